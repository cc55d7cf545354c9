"""JSON logs on stderr, one object per line. Secrets never reach a log call.

In an outage the logs stay readable (issue 11): `Outage` logs one line when a dependency
goes down, a summary every few minutes while it stays down and one line when it is back;
`ThirdPartyFilter` lets each aiokafka message through once per window (with a count of
what it held back) instead of every few milliseconds. Metrics keep the detail.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

# uvicorn adds `color_message`, the same text with ANSI colour codes, to its records
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

THIRD_PARTY_WINDOW_SECONDS = 300.0
OUTAGE_SUMMARY_SECONDS = 300.0
# aiokafka logs these at ERROR while a consumer joins its group for the first time or
# the coordinator moves: normal, and retried by aiokafka itself
_ROUTINE = ("CoordinatorNotAvailable", "NotCoordinator", "Group Coordinator Request failed")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _ANSI.sub("", record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ThirdPartyFilter(logging.Filter):
    """Rate-limits aiokafka's records: each message template once per window.

    A broker that is down makes aiokafka log "Unable connect to node" and "Unable to
    update metadata" at ERROR for every attempt, many times a second per client. The
    first of each passes, the rest of the window are counted, and the next one to pass
    carries `repeated` (how many were held back). Routine group-coordinator errors on a
    normal start are logged at INFO.
    """

    def __init__(self, window_seconds: float = THIRD_PARTY_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window = window_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        text = str(record.msg)
        if record.levelno > logging.INFO and any(r in record.getMessage() for r in _ROUTINE):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        key = (record.name, text)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._window:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.repeated = held
        return True


class Outage:
    """Down/summary/back log lines for one dependency, and a 0/1 gauge setter.

    `down(error)` on every failure, `up()` on every success: only transitions and a
    summary every `summary_seconds` reach the log.
    """

    def __init__(
        self,
        dependency: str,
        logger: logging.Logger,
        *,
        on_change: Callable[[bool], None] | None = None,
        summary_seconds: float = OUTAGE_SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dependency = dependency
        self._log = logger
        self._on_change = on_change
        self._summary = summary_seconds
        self._clock = clock
        self._state: bool | None = None  # None until the first outcome
        self.error = ""
        self._since = 0.0
        self._last_line = 0.0
        self._failures = 0

    @property
    def is_down(self) -> bool:
        return self._state is False

    def down(self, error: str) -> None:
        now = self._clock()
        self.error = error
        if self._state is not False:
            self._state, self._since, self._last_line, self._failures = False, now, now, 1
            if self._on_change is not None:
                self._on_change(False)
            self._log.warning("%s unavailable", self.dependency, extra={"dependency": self.dependency, "error": error})
            return
        self._failures += 1
        if now - self._last_line >= self._summary:
            self._last_line = now
            self._log.warning(
                "%s still unavailable",
                self.dependency,
                extra={
                    "dependency": self.dependency,
                    "down_seconds": round(now - self._since),
                    "failures": self._failures,
                    "error": error,
                },
            )

    def up(self) -> None:
        was, self._state = self._state, True
        if was is True:
            return
        if self._on_change is not None:
            self._on_change(True)
        if was is False:
            self._log.info(
                "%s is back",
                self.dependency,
                extra={"dependency": self.dependency, "down_seconds": round(self._clock() - self._since)},
            )


def setup_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ThirdPartyFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every failed connection attempt at ERROR while a broker is down
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # httpx logs each request URL at INFO, and Shopee's query strings carry access tokens
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
