"""The soak's load: order status pushes shaped like a marketplace's day, and what came back.

Orders move through Shopee's statuses (READY_TO_SHIP -> PROCESSED -> SHIPPED ->
TO_CONFIRM_RECEIVE -> COMPLETED; some end CANCELLED), one push per status change, so most
orders get several pushes, seconds to minutes apart, mixed with other shops' pushes. Each
push carries a distinct msg_id, which the gateway keeps as the row's event_id: the row of an
order can then be checked to hold its last acknowledged push, not just to exist.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.pipeline import signed
from tests.pushes import real_push

FLOW = ("READY_TO_SHIP", "PROCESSED", "SHIPPED", "TO_CONFIRM_RECEIVE", "COMPLETED")
#: pushes an order gets (status changes seen) and how often: mean 2.8
UPDATES = (1, 2, 3, 4, 5)
UPDATE_WEIGHTS = (0.2, 0.2, 0.3, 0.2, 0.1)
CANCELLED_SHARE = 0.1

Order = tuple[int, str]  # (shop_id, order_sn)


@dataclass(frozen=True, slots=True)
class Tag:
    """What the client remembers of a push in flight."""

    order: Order
    seq: int
    msg_id: str


@dataclass(slots=True)
class _Open:
    shop: int
    order_sn: str
    sent: int
    planned: int
    cancels: bool
    next_seq: int = 0  # not pushed again before this push of the run
    update_time: int = 0


class OrderMix:
    """Pushes for shops [shop_base, shop_base + shops): `in_progress` orders are open at a
    time; each push either advances a random open order to its next status or, when one has
    finished, opens a new order for a random shop. Deterministic for a seed (but for times)."""

    def __init__(self, shops: int, shop_base: int, in_progress: int, min_gap: int, seed: int = 15) -> None:
        """An order's pushes are at least `min_gap` pushes apart (make that a second or more:
        Shopee pushes an order's changes one by one, and two pushes of one order sent
        together could reach the gateway in either order)."""
        if not 0 < 2 * min_gap <= in_progress:
            raise ValueError("in_progress must be at least twice min_gap (> 0), or the picks could stall")
        self._shops = shops
        self._shop_base = shop_base
        self._in_progress = in_progress
        self._min_gap = min_gap
        self._rng = random.Random(seed)
        self._open: list[_Open] = []
        self._orders = 0

    def _new_order(self) -> _Open:
        self._orders += 1
        shop = self._shop_base + self._rng.randrange(self._shops)
        planned = self._rng.choices(UPDATES, UPDATE_WEIGHTS)[0]
        cancels = planned < len(FLOW) and self._rng.random() < CANCELLED_SHARE
        return _Open(shop, f"24{self._orders:010d}SK", 0, planned, cancels)

    def _pick(self, seq: int) -> int:
        """The index in self._open of the order whose status changes next."""
        if len(self._open) < self._in_progress:
            self._open.append(self._new_order())
            return len(self._open) - 1
        while True:  # most orders are far past their gap: few draws
            i = self._rng.randrange(len(self._open))
            if self._open[i].next_seq <= seq:
                return i

    def pushes(self, count: int) -> Iterator[tuple[Tag, bytes, dict[str, str]]]:
        """`count` signed pushes, built as they are sent (update_time: the send second, rising per order)."""
        for seq in range(count):
            i = self._pick(seq)
            order = self._open[i]
            last = order.sent + 1 == order.planned
            status = "CANCELLED" if last and order.cancels else FLOW[order.sent]
            order.sent += 1
            order.next_seq = seq + self._min_gap
            order.update_time = max(int(time.time()), order.update_time + 1)
            if last:  # finished: its slot goes to the next new order
                self._open[i] = self._open[-1]
                self._open.pop()
            msg_id = f"{self._rng.getrandbits(128):032x}"
            body = real_push(order.shop, order.order_sn, status, order.update_time, msg_id=msg_id)
            yield Tag((order.shop, order.order_sn), seq, msg_id), body, signed(body)


@dataclass
class Answers:
    """The client's view: answers by status, and per order its last acknowledged push."""

    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    last_ok: dict[Order, tuple[int, str]] = field(default_factory=dict)  # order -> (seq, msg_id)
    unanswered: set[Order] = field(default_factory=set)  # orders with a push not acknowledged

    def answered(self, tag: Tag, status: int | None, now: float) -> None:
        if status is None:
            self.errors += 1
        else:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if status is None or not 200 <= status < 300:
            self.unanswered.add(tag.order)
            return
        seen = self.last_ok.get(tag.order)
        if seen is None or seen[0] < tag.seq:
            self.last_ok[tag.order] = (tag.seq, tag.msg_id)

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300) + self.errors
