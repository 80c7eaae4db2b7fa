"""What went wrong with a reply, told plainly to the visitor and in one line to the log.

Built on the openai SDK's typed errors; Moonshot's error ``type`` (in the body) tells
apart cases that share a status code, such as an overloaded engine and an empty wallet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from openai import APIConnectionError, APIStatusError, APITimeoutError

from .i18n import Lang, t
from .kimi import StreamBroken

log = logging.getLogger("kimichat.failures")


@dataclass(frozen=True)
class Failure:
    """One failed reply: ``kind`` for the log, ``status`` if HTTP gave one."""

    kind: str
    status: int | None = None
    detail: str = ""

    def message(self, lang: Lang, settings_url: str) -> str:
        """The sentence the visitor reads: no traceback, no key, no upstream text."""
        where = t("no_key_where", lang, url=settings_url) if settings_url else ""
        if self.kind == "no_key":
            return t("no_key", lang, where=where)
        if self.kind == "auth":
            return t("key_rejected", lang, where=where)
        return t("upstream_failed", lang, reason=self.detail or self.kind)


def classify(exc: BaseException) -> Failure:
    """Map an exception from the Kimi call to a ``Failure``."""
    if isinstance(exc, APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        kind = {401: "auth", 403: "no_balance", 429: "busy"}.get(exc.status_code, "upstream_error")
        return Failure(kind, exc.status_code, str(error.get("type") or f"HTTP {exc.status_code}"))
    if isinstance(exc, APITimeoutError):
        return Failure("timeout", detail="timeout")
    if isinstance(exc, APIConnectionError):
        return Failure("connection", detail="connection error")
    if isinstance(exc, StreamBroken):
        return Failure("stream_broken", detail=str(exc))
    return Failure("internal", detail=type(exc).__name__)


def log_failure(failure: Failure, persona: str, model: str) -> None:
    """One line per failure: kind, persona, model, status. Never content or keys."""
    log.warning(
        "reply failed kind=%s persona=%s model=%s status=%s detail=%s",
        failure.kind,
        persona,
        model,
        failure.status,
        failure.detail,
    )
