"""What the push sender will send, and the ledger of what happened (pure, no I/O).

The plan is a deterministic function of the config (given a seed) and the start time:
orders spread round-robin over shops, each following a realistic status progression with
increasing update_time, rendered as the exact code-3 body of docs/contract.md#push-payloads. The ledger records
every delivery, and `expected_orders()` says what the database should end up holding.
"""

from __future__ import annotations

import random
import string
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

PROGRESSION = ("READY_TO_SHIP", "PROCESSED", "SHIPPED", "TO_CONFIRM_RECEIVE", "COMPLETED")
SHOPEE_RETRY_DELAYS_SECONDS = (300.0, 1800.0, 10800.0)


@dataclass(frozen=True, slots=True)
class PushConfig:
    """Options of `python -m service sandbox push` (and of `send_pushes`)."""

    url: str
    push_key: str
    callback_url: str | None = None  # the URL in the signature; defaults to `url`
    shops: int = 1
    orders: int = 10
    shop_id_base: int = 100000
    duplicates: float = 0.0
    out_of_order: bool = False
    concurrency: int = 10
    include_unpaid: bool = False
    cancel_fraction: float = 0.1
    time_scale: float = 1.0
    retry_delays_seconds: tuple[float, ...] = SHOPEE_RETRY_DELAYS_SECONDS
    timeout_seconds: float = 3.0
    require_empty_body: bool = True
    order_sn_prefix: str = ""
    seed: int | None = None
    sandbox_url: str | None = None
    # each push, independently: never delivered and put in the lost-push queue at once
    # (as if every retry had failed), or never sent at all (the order changed silently)
    lost_fraction: float = 0.0
    silent_fraction: float = 0.0

    @property
    def signed_url(self) -> str:
        return self.callback_url or self.url


@dataclass(frozen=True, slots=True)
class PlannedPush:
    shop_id: int
    order_sn: str
    status: str
    update_time: int
    body: bytes
    duplicate: bool = False


def push_body(shop_id: int, order_sn: str, status: str, update_time: int) -> bytes:
    """The exact bytes of a code-3 order status push (docs/contract.md#push-payloads, key order and all)."""
    data = {"items": [], "ordersn": order_sn, "status": status, "completed_scenario": "", "update_time": update_time}
    return orjson.dumps({"data": data, "shop_id": shop_id, "code": 3, "timestamp": update_time})


def statuses(rng: random.Random, include_unpaid: bool, cancel_fraction: float) -> list[str]:
    if rng.random() < cancel_fraction:
        path = list(PROGRESSION[: rng.randint(0, 2)])
        if path and rng.random() < 0.5:
            path.append("IN_CANCEL")
        path.append("CANCELLED")
    else:
        path = list(PROGRESSION[: rng.randint(1, len(PROGRESSION))])
    return ["UNPAID", *path] if include_unpaid else path


def order_sn(rng: random.Random, prefix: str, day: str) -> str:
    return prefix + day + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))


def build_plan(config: PushConfig, now: float) -> list[PlannedPush]:
    rng = random.Random(config.seed)
    day = _yymmdd(int(now))
    per_order: list[list[PlannedPush]] = []
    seen: set[str] = set()
    for i in range(config.orders):
        shop_id = config.shop_id_base + i % max(1, config.shops)
        sn = order_sn(rng, config.order_sn_prefix, day)
        while sn in seen:
            sn = order_sn(rng, config.order_sn_prefix, day)
        seen.add(sn)
        t = int(now) - rng.randint(3 * 3600, 86400)
        steps = []
        for status in statuses(rng, config.include_unpaid, config.cancel_fraction):
            t += rng.randint(30, 1800)
            steps.append(PlannedPush(shop_id, sn, status, t, push_body(shop_id, sn, status, t)))
        per_order.append(steps)
    # natural order: every order's first status, then every order's second, ...
    plan = [steps[k] for k in range(max(map(len, per_order), default=0)) for steps in per_order if k < len(steps)]
    plan = _with_duplicates(plan, rng, config.duplicates)
    if config.out_of_order:
        rng.shuffle(plan)
    return plan


def _with_duplicates(plan: list[PlannedPush], rng: random.Random, fraction: float) -> list[PlannedPush]:
    """Each push, with probability `fraction`, is delivered a second time somewhere later."""
    later: dict[int, list[PlannedPush]] = {}
    for index, push in enumerate(plan):
        if fraction > 0 and rng.random() < fraction:
            dup = PlannedPush(push.shop_id, push.order_sn, push.status, push.update_time, push.body, duplicate=True)
            later.setdefault(rng.randint(index + 1, len(plan)), []).append(dup)
    result: list[PlannedPush] = []
    for index in range(len(plan) + 1):
        result.extend(later.get(index, ()))
        if index < len(plan):
            result.append(plan[index])
    return result


def _yymmdd(ts: int) -> str:
    return time.strftime("%y%m%d", time.gmtime(ts))


@dataclass(slots=True)
class LedgerEntry:
    shop_id: int
    order_sn: str
    status: str
    update_time: int
    duplicate: bool = False
    attempts: int = 0
    status_code: int | None = None  # of the last attempt; None when no answer arrived
    acknowledged: bool = False
    lost: bool = False
    silent: bool = False  # deliberately never sent (PushConfig.silent_fraction)
    error: str | None = None
    codes: list[int | None] = field(default_factory=list)


@dataclass(slots=True)
class Ledger:
    entries: list[LedgerEntry] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0

    def summary(self) -> dict[str, Any]:
        codes: dict[str, int] = {}
        for e in self.entries:
            for code in e.codes:
                codes[str(code)] = codes.get(str(code), 0) + 1
        elapsed = max(self.finished_at - self.started_at, 1e-9)
        return {
            "pushes": len(self.entries),
            "orders": len({(e.shop_id, e.order_sn) for e in self.entries}),
            "shops": len({e.shop_id for e in self.entries}),
            "acknowledged": sum(e.acknowledged for e in self.entries),
            "lost": sum(e.lost for e in self.entries),
            "silent": sum(e.silent for e in self.entries),
            "duplicates": sum(e.duplicate for e in self.entries),
            "attempts": sum(e.attempts for e in self.entries),
            "retried": sum(e.attempts > 1 for e in self.entries),
            "answers": codes,
            "seconds": round(elapsed, 3),
            "pushes_per_second": round(len(self.entries) / elapsed, 1),
        }

    def expected_orders(self) -> dict[tuple[str, str], tuple[str, int]]:
        """(shop_id, order_sn) -> (status, update_time) of the newest acknowledged, non-UNPAID push."""
        expected: dict[tuple[str, str], tuple[str, int]] = {}
        for e in self.entries:
            if not e.acknowledged or e.status == "UNPAID":
                continue
            key = (str(e.shop_id), e.order_sn)
            if key not in expected or expected[key][1] < e.update_time:
                expected[key] = (e.status, e.update_time)
        return expected

    def to_json(self) -> bytes:
        doc = {"summary": self.summary(), "pushes": [asdict(e) for e in self.entries]}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes) -> Ledger:
        doc = orjson.loads(raw)
        return cls(entries=[LedgerEntry(**e) for e in doc["pushes"]])
