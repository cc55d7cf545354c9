"""The sandbox's configuration, fault settings and shared vocabulary.

Everything here is plain data: the state, the app and the push sender are built from it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

#: a clock: unix seconds as a float; tests hand in a fake one
Clock = Callable[[], float]
#: waits out injected latency; tests hand in one that does not really wait
Sleep = Callable[[float], Awaitable[None]]

ORDER_DETAIL_PATH = "/api/v2/order/get_order_detail"
AUTH_REFRESH_PATH = "/api/v2/auth/access_token/get"
LOST_PUSH_PATH = "/api/v2/push/get_lost_push_message"
CONFIRM_LOST_PUSH_PATH = "/api/v2/push/confirm_consumed_lost_push_message"
ORDER_LIST_PATH = "/api/v2/order/get_order_list"

TIMESTAMP_TOLERANCE_SECONDS = 300
MAX_ORDER_SNS = 50
LOST_PUSH_PAGE_SIZE = 100
LOST_PUSH_RETENTION_SECONDS = 3 * 86400

DEFAULT_PARTNER_ID = 2001887
DEFAULT_PARTNER_KEY = "sandbox_partner_key_not_secret"


def system_clock() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected misbehaviour, settable at start (CLI) or at run time (POST /sandbox/faults).

    `error_rate` answers HTTP 500 with Shopee's `error_server` envelope; `unavailable_rate`
    answers a bare HTTP 503 (a proxy in front of Shopee); `rate_limit_per_minute` (0 = off)
    answers HTTP 429 `error_too_many_request` with Retry-After once a shop made that many
    accepted order calls in the last 60 s.
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    unavailable_rate: float = 0.0
    rate_limit_per_minute: int = 0

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with `changes` applied; unknown keys or bad values raise ValueError."""
        known = {f.name: f.type for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fault {key!r} must be a number")
            if value < 0 or (key.endswith("_rate") and value > 1):
                raise ValueError(f"fault {key!r} out of range")
            clean[key] = int(value) if key == "rate_limit_per_minute" else float(value)
        return replace(self, **clean)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the simulated Shopee behaves.

    `auto_orders`: any order SN the sandbox was not told about exists (READY_TO_SHIP,
    deterministic fields), except SNs starting with `unknown_prefix`, which never exist.
    `strict_shops`: only shops created through `POST /sandbox/shops` (or `initial_shops`)
    are accepted; otherwise any shop id is accepted and created on first use.
    """

    partner_id: int = DEFAULT_PARTNER_ID
    partner_key: str = DEFAULT_PARTNER_KEY
    initial_shops: tuple[int, ...] = ()
    strict_shops: bool = False
    auto_orders: bool = True
    unknown_prefix: str = "UNKNOWN"
    token_ttl_seconds: float = 14400.0
    token_grace_seconds: float = 300.0
    refresh_ttl_seconds: float = 30 * 86400.0
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None

    @property
    def key_bytes(self) -> bytes:
        return self.partner_key.encode()


def shop_range(count: int, base: int) -> tuple[int, ...]:
    return tuple(range(base, base + count))
