"""What the server writes to its logs: an access log without tokens, and warnings rate-limited
so that a flood of bad connections costs one line per interval, not one per attempt."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from tornado import web
from tornado.log import access_log

# ``token=...`` in a query string; the value ends at the next parameter or fragment.
_QUERY_TOKEN = re.compile(r"([?&;]token=)[^&;#\s]*", re.IGNORECASE)


def redact(uri: str) -> str:
    """The URI with the value of every ``token`` query parameter replaced."""
    return _QUERY_TOKEN.sub(r"\1[redacted]", uri)


def log_request(handler: web.RequestHandler) -> None:
    """tornado's access log line (same levels, same shape), without the token: every 4xx of a
    client passing ``?token=`` would otherwise write it to the log."""
    status = handler.get_status()
    write = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    request = handler.request
    write("%d %s %s (%s) %.2fms", status, request.method, redact(request.uri or ""),
           request.remote_ip, 1000.0 * request.request_time())


class Throttled:
    """Logs each kind of event at most once per ``interval`` seconds, with how many were
    left out since the last line."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        suffix = f" ({skipped} more like it in the last {now - last:.0f}s)" if skipped and last else ""
        self.logger.warning(message + suffix, *args)
