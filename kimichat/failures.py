"""What went wrong with a reply: told plainly to the visitor, in one line to the log,
and whether it is worth another try.

Built on the openai SDK's typed status errors and kimi.py's own transport errors (so no
HTTP library is imported here). Moonshot's error ``type`` in the body tells
apart cases that share a status: a 429 may be an overloaded engine (retry soon), the
account's concurrency/RPM limit (wait as told: "try again after N seconds", since no
``Retry-After`` header is sent) or an empty wallet (do not retry; tell the owner).
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass

from openai import APIError, APIStatusError

from .i18n import Refusal
from .kimi import ConnectionLost, StreamBroken, StreamEnded, StreamTimeout

log = logging.getLogger("kimichat.failures")

RETRYABLE = {"busy", "server_error", "connection"}
ERROR_TYPE = re.compile(r"[a-z_]{1,48}")
MAX_TOLD_WAIT = 10.0  # seconds; a longer "try again after" is passed on to the visitor instead


class FirstTokenTimeout(Exception):
    """Kimi accepted the request but sent nothing readable in time."""


@dataclass(frozen=True)
class Failure:
    """One failed attempt: ``kind`` for the log and the message, ``wait`` as Kimi told it."""

    kind: str
    status: int | None = None
    detail: str = ""
    wait: float | None = None

    def retry_delay(self, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None: do not retry."""
        if self.kind == "rate_limited" and self.wait is not None and self.wait <= MAX_TOLD_WAIT:
            return self.wait
        if self.kind in RETRYABLE:
            return min(8.0, 0.5 * 2**attempt) * random.uniform(0.8, 1.2)
        return None

    def refusal(self, settings_url: str) -> Refusal:
        """What the visitor is told: no traceback, no key, no upstream text."""
        if self.kind in RETRYABLE or self.kind == "rate_limited":
            return Refusal("busy", {"seconds": int(self.wait or 10)})
        if self.kind in {"auth", "no_balance"}:
            return Refusal(self.kind, {"where": where_to_fix(settings_url)})
        if self.kind in {"content_filter", "context_too_long", "model_not_found", "timeout", "stream_broken"}:
            return Refusal(self.kind)
        return Refusal("upstream_failed", {"reason": self.kind})  # the app's own word, never upstream text

    def midway(self, settings_url: str) -> Refusal:
        """What a reply that stopped after text was shown is told: what happened, and that what
        arrived is kept."""
        if self.kind == "connection":
            return Refusal("cut_off")
        if self.kind == "content_filter":
            return Refusal("filtered")
        return Refusal("stopped_midway", {"reason": self.refusal(settings_url)})


def where_to_fix(settings_url: str) -> Refusal | str:
    """Where the owner adds the key: the Space's settings page, when there is one."""
    return Refusal("no_key_where", {"url": settings_url}) if settings_url else ""


def _told_wait(message: str) -> float | None:
    match = re.search(r"after (\d+(?:\.\d+)?) ?s", message)
    return float(match[1]) if match else None


def classify(exc: BaseException) -> Failure:
    """Map an exception from a Kimi call to a ``Failure``: an HTTP error, or an error event
    inside a stream that had begun (the SDK raises it as an ``APIError`` with no status)."""
    if isinstance(exc, APIError) and isinstance(exc.body, dict):
        error = exc.body.get("error", exc.body)
        error = error if isinstance(error, dict) else {}
        error_type, text = str(error.get("type") or ""), str(error.get("message") or "")
        status = exc.status_code if isinstance(exc, APIStatusError) else None
        # Moonshot's error types are short snake_case words; anything else (an upstream that echoes
        # a header, say) is not repeated anywhere: the log gets the status alone.
        detail = error_type if ERROR_TYPE.fullmatch(error_type) else f"HTTP {status}"
        return Failure(_kind(status, error_type, text), status, detail, _told_wait(text))
    if isinstance(exc, (ConnectionLost, StreamEnded)):  # worth another try while nothing is shown
        return Failure("connection", detail=str(exc) or "connection error")
    if isinstance(exc, (FirstTokenTimeout, StreamTimeout)):
        return Failure("timeout", detail="timeout")
    if isinstance(exc, StreamBroken):
        return Failure("stream_broken", detail=str(exc))
    return Failure("internal", detail=type(exc).__name__)


def _kind(status: int | None, error_type: str, text: str) -> str:
    """The failure's kind from the HTTP status (None inside a stream) and Moonshot's error type."""
    if status == 401 or error_type in {"invalid_authentication_error", "incorrect_api_key_error"}:
        return "auth"
    if status == 403 or error_type in {"permission_denied_error", "exceeded_current_quota_error"}:
        return "no_balance"
    if error_type == "rate_limit_reached_error":
        return "rate_limited"
    if status == 429 or error_type == "engine_overloaded_error":
        return "busy"
    if error_type == "content_filter" or "high risk" in text:
        return "content_filter"
    if "token limit" in text:
        return "context_too_long"
    if status == 404 or error_type == "resource_not_found_error":
        return "model_not_found"
    if (status or 0) >= 500 or error_type in {"server_error", "unexpected_output"}:
        return "server_error"
    return "bad_request"


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
