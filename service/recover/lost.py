"""The lost-push sweep: fetch, make durable, confirm, fetch again.

Shopee's get_lost_push_message has no cursor: it answers the oldest unconfirmed messages
(at most 100) until they are confirmed. So each page is run through the ingest's
pipeline and sink, and only once every message of the page is durable (a record, a dead
letter, or deliberately filtered) is `last_message_id` confirmed. A sink failure stops
the sweep without confirming; a crash between durable and confirm re-delivers the page
next time, which the pipeline's stable event_id and the idempotent upsert absorb. An
empty page is never confirmed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson

from service.errors import GatewayError
from service.recover.api import LostMessage, RecoverAPI
from service.recover.metrics import RecoverMetrics
from service.recover.produce import Outcome, Producer
from service.recover.store import RunTotals

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE = "lost_push"
#: a sweep stops after this many pages even if Shopee keeps answering: the next one goes on
MAX_PAGES = 1000


def push_body(message: LostMessage) -> dict[str, Any] | None:
    """The push as POST /webhooks/shopee would have received it; None when `data` is not JSON.

    `data` is the original push: either the whole envelope or only its `data` object
    (what the message's own shop_id, code and timestamp then complete).
    """
    try:
        parsed = orjson.loads(message.data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("data"), dict) and ("code" in parsed or "shop_id" in parsed):
        return parsed
    body: dict[str, Any] = {"data": parsed}
    if message.shop_id is not None:
        body["shop_id"] = message.shop_id
    body["code"] = message.code
    body["timestamp"] = message.timestamp
    return body


class LostPushSweep:
    kind = "lost_push"

    def __init__(self, api: RecoverAPI, producer: Producer, metrics: RecoverMetrics) -> None:
        self._api = api
        self._producer = producer
        self._metrics = metrics

    async def run(self) -> RunTotals:
        """One sweep until Shopee has nothing left; errors other than per-message ones propagate."""
        seen = produced = dead = pages = 0
        confirmed_up_to = 0
        while pages < MAX_PAGES:
            page = await self._counted("get_lost_push_message", self._api.lost_push_page())
            if not page.messages:
                break
            if page.last_message_id <= confirmed_up_to:
                raise RuntimeError(f"Shopee re-sent messages up to {page.last_message_id} after they were confirmed")
            pages += 1
            seen += len(page.messages)
            self._metrics.lost_pushes.labels("fetched").inc(len(page.messages))
            for message in page.messages:
                outcome = await self._one(message)
                produced += outcome is Outcome.FORWARDED
                dead += outcome is Outcome.DEAD_LETTERED
                self._metrics.lost_pushes.labels(_STAGE[outcome]).inc()
            await self._counted(
                "confirm_consumed_lost_push_message", self._api.confirm_lost_pushes(page.last_message_id)
            )
            confirmed_up_to = page.last_message_id
            self._metrics.lost_pushes.labels("confirmed").inc(len(page.messages))
            log.info(
                "lost pushes confirmed", extra={"messages": len(page.messages), "last_message_id": confirmed_up_to}
            )
            if not page.has_next_page:
                break
        detail = f"{pages} pages, confirmed up to message {confirmed_up_to}, {dead} dead-lettered"
        return RunTotals(seen=seen, produced=produced, detail=detail)

    async def _counted(self, call: str, step: Awaitable[T]) -> T:
        try:
            return await step
        except GatewayError as exc:
            self._metrics.shopee_errors.labels(call, exc.reason).inc()
            raise

    async def _one(self, message: LostMessage) -> Outcome:
        body = push_body(message)
        if body is None:
            return await self._producer.dead_letter(
                "invalid_json", "lost push data is not JSON", message.data.encode(), SOURCE
            )
        return await self._producer.submit(body, SOURCE)


_STAGE = {Outcome.FORWARDED: "produced", Outcome.SKIPPED: "skipped", Outcome.DEAD_LETTERED: "dead_lettered"}
