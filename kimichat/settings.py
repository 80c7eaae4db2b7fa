"""Every environment setting in one typed place, read once at startup.

Spaces pass both secrets and variables as environment variables, so this is the
only module that reads ``os.environ``; everything else gets a ``Settings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path

from .address import AddressReader, parse_networks

ROOT = Path(__file__).resolve().parent.parent
CHINA_BASE_URL = "https://api.moonshot.cn/v1"
GLOBAL_BASE_URL = "https://api.moonshot.ai/v1"


def _parse_bool(raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message names the variable."""


LIMITS = ("_PER_MINUTE", "_PER_HOUR", "_PER_DAY")


@dataclass(frozen=True)
class Settings:
    """What the owner can tune. ``env`` in each field's metadata is its variable; ``public`` marks
    those that may be a Space's public variable (deploy.py publishes no other: keys, URLs that
    can carry credentials, local paths and the Space's own variables stay out)."""

    # -- Kimi: where requests go, how they are made, and how many at once.
    # repr=False: the key must never reach a log line or a traceback.
    api_key: str = field(default="", repr=False, metadata={"env": "MOONSHOT_API_KEY"})
    base_url: str = field(default=CHINA_BASE_URL, metadata={"env": "MOONSHOT_BASE_URL", "public": True})
    default_model: str = field(default="kimi-k2.6", metadata={"env": "KIMI_DEFAULT_MODEL", "public": True})
    allowed_models: str = field(default="", metadata={"env": "ALLOWED_MODELS", "public": True})
    allow_visitor_keys: bool = field(default=True, metadata={"env": "ALLOW_VISITOR_KEYS", "public": True})
    max_reply_tokens: int = field(default=8192, metadata={"env": "KIMI_MAX_REPLY_TOKENS", "public": True})
    thinking_reply_tokens: int = field(default=32768, metadata={"env": "KIMI_THINKING_REPLY_TOKENS", "public": True})
    max_retries: int = field(default=2, metadata={"env": "KIMI_MAX_RETRIES", "public": True})
    connect_timeout: float = field(default=10.0, metadata={"env": "KIMI_CONNECT_TIMEOUT", "public": True})
    first_token_timeout: float = field(default=90.0, metadata={"env": "KIMI_FIRST_TOKEN_TIMEOUT", "public": True})
    idle_timeout: float = field(default=60.0, metadata={"env": "KIMI_IDLE_TIMEOUT", "public": True})
    models_cache_seconds: float = field(default=600.0, metadata={"env": "KIMI_MODELS_CACHE_SECONDS", "public": True})
    models_timeout: float = field(default=5.0, metadata={"env": "KIMI_MODELS_TIMEOUT", "public": True})
    upstream_concurrency: int = field(default=50, metadata={"env": "UPSTREAM_CONCURRENCY", "public": True})

    # -- A conversation: what one message and one request may carry.
    max_message_chars: int = field(default=20000, metadata={"env": "MAX_MESSAGE_CHARS", "public": True})
    max_request_tokens: int = field(default=32768, metadata={"env": "MAX_REQUEST_TOKENS", "public": True})
    max_turns: int = field(default=100, metadata={"env": "MAX_TURNS", "public": True})
    conversation_token_budget: int = field(default=0, metadata={"env": "CONVERSATION_TOKEN_BUDGET", "public": True})

    # -- Uploads: per file, per message, per address; how long the Space keeps them.
    max_file_mb: float = field(default=20.0, metadata={"env": "MAX_FILE_MB", "public": True})
    max_files_per_message: int = field(default=10, metadata={"env": "MAX_FILES_PER_MESSAGE", "public": True})
    uploads_per_minute: int = field(default=20, metadata={"env": "UPLOADS_PER_MINUTE", "public": True})
    uploads_per_hour: int = field(default=200, metadata={"env": "UPLOADS_PER_HOUR", "public": True})
    upload_mb_per_hour: float = field(default=500.0, metadata={"env": "UPLOAD_MB_PER_HOUR", "public": True})
    files_kept_seconds: int = field(default=86400, metadata={"env": "FILES_KEPT_SECONDS", "public": True})

    # -- Limits per visitor (an address, or a signed-in account, and a session), and where they are counted.
    rate_limit_per_minute: int = field(default=10, metadata={"env": "RATE_LIMIT_PER_MINUTE", "public": True})
    rate_limit_per_hour: int = field(default=200, metadata={"env": "RATE_LIMIT_PER_HOUR", "public": True})
    visitor_tokens_per_hour: int = field(default=300_000, metadata={"env": "VISITOR_TOKENS_PER_HOUR", "public": True})
    visitor_tokens_per_day: int = field(default=1_000_000, metadata={"env": "VISITOR_TOKENS_PER_DAY", "public": True})
    signed_in_factor: int = field(default=3, metadata={"env": "SIGNED_IN_FACTOR", "public": True})
    address_replies: int = field(default=3, metadata={"env": "ADDRESS_REPLIES", "public": True})
    rate_limit_storage_url: str = field(default="memory://", metadata={"env": "RATE_LIMIT_STORAGE_URL"})

    # -- Ceilings for the whole Space on the owner's key: what bounds the bill.
    space_messages_per_minute: int = field(default=60, metadata={"env": "SPACE_MESSAGES_PER_MINUTE", "public": True})
    space_messages_per_hour: int = field(default=1500, metadata={"env": "SPACE_MESSAGES_PER_HOUR", "public": True})
    space_messages_per_day: int = field(default=10_000, metadata={"env": "SPACE_MESSAGES_PER_DAY", "public": True})
    space_tokens_per_minute: int = field(default=1_000_000, metadata={"env": "SPACE_TOKENS_PER_MINUTE", "public": True})
    space_tokens_per_hour: int = field(default=5_000_000, metadata={"env": "SPACE_TOKENS_PER_HOUR", "public": True})
    space_tokens_per_day: int = field(default=20_000_000, metadata={"env": "SPACE_TOKENS_PER_DAY", "public": True})

    # -- Requests at the server's door: who sent them (the proxy chain), their size, and the page's direct calls
    # (steps past the queue, each carrying the whole chat: their rate per address, their size, and how many
    # sessions' state the server keeps; worst case about STATE_SESSIONS x MAX_DIRECT_BODY_MB of memory).
    trust_forwarded_for: bool | None = field(
        default=None, metadata={"env": "TRUST_FORWARDED_FOR", "public": True, "kind": bool}
    )
    forwarded_hops: int = field(default=1, metadata={"env": "FORWARDED_HOPS", "public": True})
    trusted_proxies: str = field(default="", metadata={"env": "TRUSTED_PROXIES", "public": True})
    max_body_mb: float = field(default=8.0, metadata={"env": "MAX_BODY_MB", "public": True})
    max_direct_body_mb: float = field(default=4.0, metadata={"env": "MAX_DIRECT_BODY_MB", "public": True})
    direct_calls_per_minute: int = field(default=300, metadata={"env": "DIRECT_CALLS_PER_MINUTE", "public": True})
    state_sessions: int = field(default=1000, metadata={"env": "STATE_SESSIONS", "public": True})

    # -- The page and the agents: how many chats Gradio runs and queues, how often a reply is redrawn, the MCP server.
    chat_concurrency: int = field(default=100, metadata={"env": "CHAT_CONCURRENCY", "public": True})
    queue_max_size: int = field(default=500, metadata={"env": "QUEUE_MAX_SIZE", "public": True})
    updates_per_second: float = field(default=11.0, metadata={"env": "UI_UPDATES_PER_SECOND", "public": True})
    mcp_server: bool = field(default=True, metadata={"env": "MCP_SERVER", "public": True})
    mcp_calls: int = field(default=20, metadata={"env": "MCP_CALLS", "public": True})

    # -- The Space: its personas, its saved chats' secret (fixed, so they survive restarts: ui.py), and what Spaces
    # sets (OAUTH_CLIENT_ID when the README says `hf_oauth: true`: visitors may then sign in).
    personas_path: Path = field(default=ROOT / "personas.yaml", metadata={"env": "PERSONAS_PATH"})
    saved_chats_secret: str = field(default="", repr=False, metadata={"env": "SAVED_CHATS_SECRET"})
    space_id: str = field(default="", metadata={"env": "SPACE_ID"})
    oauth_client_id: str = field(default="", metadata={"env": "OAUTH_CLIENT_ID"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            kind = f.metadata.get("kind", type(f.default))
            try:
                values[f.name] = _parse_bool(raw) if kind is bool else kind(raw)
            except ValueError:
                raise SettingsError(f"{f.metadata['env']}={raw!r} is not a valid {kind.__name__}") from None
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.base_url.startswith(("http://", "https://")):
            raise SettingsError(f"MOONSHOT_BASE_URL must start with https:// (got {settings.base_url!r})")
        settings.check_ceilings()
        try:
            parse_networks(settings.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"TRUSTED_PROXIES={settings.trusted_proxies!r}: {exc}") from None
        return settings

    @property
    def largest_request(self) -> int:
        """The most one request can reserve: the request bound plus the larger reply budget."""
        return self.max_request_tokens + max(self.max_reply_tokens, self.thinking_reply_tokens)

    def check_ceilings(self) -> None:
        """A token ceiling below one request's reservation would refuse every message: say so at startup."""
        for f in fields(self):
            if f.metadata["env"].endswith(("TOKENS_PER_MINUTE", "TOKENS_PER_HOUR", "TOKENS_PER_DAY")):
                value = getattr(self, f.name)
                if 0 < value < self.largest_request:
                    raise SettingsError(
                        f"{f.metadata['env']}={value} is below one request's reservation ({self.largest_request}: "
                        "MAX_REQUEST_TOKENS plus the reply budget); raise it, lower those, or set 0 for no limit"
                    )

    @property
    def address_reader(self) -> AddressReader:
        """How visitor addresses are read (address.py): from ``X-Forwarded-For`` on a Space by default,
        elsewhere when told to (TRUST_FORWARDED_FOR); internal hops and TRUSTED_PROXIES skipped,
        then FORWARDED_HOPS public ones (the Spaces proxy: one)."""
        trusted = self.trust_forwarded_for if self.trust_forwarded_for is not None else bool(self.space_id)
        return AddressReader(max(0, self.forwarded_hops) if trusted else 0, parse_networks(self.trusted_proxies))

    @property
    def allowed(self) -> frozenset[str]:
        """The model ids visitors may use (``ALLOWED_MODELS``, comma-separated); empty: any listed."""
        return frozenset(m.strip() for m in self.allowed_models.split(",") if m.strip())

    @property
    def sign_in(self) -> bool:
        """Whether visitors can sign in: only on a Space whose OAuth is set up (off a Space, any
        login button would make Gradio need the machine's own Hugging Face login at startup)."""
        return bool(self.oauth_client_id and self.space_id)

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def settings_url(self) -> str:
        """Where the owner adds secrets: the Space's settings page, when on a Space."""
        if self.space_id:
            return f"https://huggingface.co/spaces/{self.space_id}/settings"
        return ""


def limit_settings() -> list[Field]:
    """The settings that limit visitors, per minute, hour or day or per address: the tests switch
    them off, the benchmarks set them far above the run."""
    return [f for f in fields(Settings) if f.metadata["env"].endswith(LIMITS) or f.name == "address_replies"]
