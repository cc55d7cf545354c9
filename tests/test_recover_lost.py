"""The lost-push sweep with fakes: what is made durable, and when a page is confirmed."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from service.errors import SinkUnavailable
from service.pipeline import load_pipeline
from service.records import OrderRecord, PushEvent
from service.recover.api import LostMessage, LostPage
from service.recover.lost import LostPushSweep, push_body
from service.recover.metrics import RecoverMetrics
from service.recover.produce import Producer
from service.settings import DEFAULT_TRANSFORMS, Settings
from tests.fakes import FakeSink
from tests.pushes import real_push

ORDERS, DLQ = "orders", "dlq"


class FakeAPI:
    """Shopee's lost-push queue: the oldest 100 unconfirmed, until confirmed."""

    def __init__(self, messages: list[LostMessage]) -> None:
        self.queue = list(enumerate(messages, start=1))
        self.confirms: list[int] = []

    async def lost_push_page(self) -> LostPage:
        page = self.queue[:100]
        return LostPage([m for _, m in page], len(self.queue) > 100, page[-1][0] if page else 0)

    async def confirm_lost_pushes(self, last_message_id: int) -> None:
        self.confirms.append(last_message_id)
        self.queue = [(i, m) for i, m in self.queue if i > last_message_id]


def message(sn: str, status: str = "SHIPPED", shop: int = 900001) -> LostMessage:
    data = {"items": [], "ordersn": sn, "status": status, "completed_scenario": "", "update_time": 1_700_000_000}
    return LostMessage(shop_id=shop, code=3, timestamp=1_700_000_500, data=orjson.dumps(data).decode())


def sweep(api: FakeAPI, sink: FakeSink) -> LostPushSweep:
    settings = Settings(kafka_topic_marketplace_orders=ORDERS, kafka_topic_dead_letter=DLQ)
    pipeline = load_pipeline(DEFAULT_TRANSFORMS.split(","))
    producer = Producer(settings, sink, pipeline, clock=lambda: 1_700_001_000.0)
    return LostPushSweep(api, producer, RecoverMetrics(CollectorRegistry()))  # type: ignore[arg-type]


async def test_pages_are_confirmed_one_by_one_after_their_records_are_durable() -> None:
    api, sink = FakeAPI([message(f"L{i}") for i in range(230)]), FakeSink()
    totals = await sweep(api, sink).run()
    assert api.confirms == [100, 200, 230]
    assert (totals.seen, totals.produced) == (230, 230)
    assert [orjson.loads(v)["order_sn"] for _, _, v in sink.sent] == [f"L{i}" for i in range(230)]


async def test_a_sink_failure_stops_the_sweep_without_confirming_the_page() -> None:
    api, sink = FakeAPI([message(f"L{i}") for i in range(150)]), FakeSink()
    sink.fail, sink.fail_after = SinkUnavailable("kafka and the outbox are down"), 120
    with pytest.raises(SinkUnavailable):
        await sweep(api, sink).run()
    assert api.confirms == [100]
    assert len(api.queue) == 50


async def test_an_empty_queue_is_never_confirmed() -> None:
    api = FakeAPI([])
    totals = await sweep(api, FakeSink()).run()
    assert api.confirms == []
    assert totals.seen == 0


async def test_a_recovered_record_has_the_pushs_event_id_and_says_where_it_came_from() -> None:
    sink = FakeSink()
    await sweep(FakeAPI([message("SAME")]), sink).run()
    ((topic, key, value),) = sink.sent
    recovered = orjson.loads(value)
    assert (topic, key, recovered["source"]) == (ORDERS, b"shop-900001", "lost_push")
    pushed = load_pipeline(DEFAULT_TRANSFORMS.split(","))(
        PushEvent(body=orjson.loads(real_push(900001, "SAME", "SHIPPED", 1_700_000_000)), received_ms=1)
    )
    assert isinstance(pushed, PushEvent) and pushed.record is not None
    assert recovered["event_id"] == pushed.record.event_id
    assert OrderRecord.from_dict(recovered).order_sn == "SAME"  # the consumer decodes it


async def test_unpaid_is_filtered_and_unusable_bodies_are_dead_lettered_then_confirmed() -> None:
    bad = LostMessage(shop_id=900001, code=3, timestamp=1, data="{not json")
    no_sn = LostMessage(shop_id=900001, code=3, timestamp=1, data='{"status": "SHIPPED"}')
    api, sink = FakeAPI([message("U", status="UNPAID"), bad, no_sn, message("OK")]), FakeSink()
    totals = await sweep(api, sink).run()
    assert api.confirms == [4]
    assert totals.produced == 1
    letters = [orjson.loads(v) for t, _, v in sink.sent if t == DLQ]
    assert [(x["reason"], x["source"]) for x in letters] == [
        ("invalid_json", "lost_push"),
        ("missing_fields", "lost_push"),
    ]


def test_data_may_be_the_whole_push_or_only_its_data_object() -> None:
    whole = real_push(900001, "W", "SHIPPED", 1_700_000_000).decode()
    assert push_body(LostMessage(shop_id=900001, code=3, timestamp=5, data=whole)) == orjson.loads(whole)
    inner = push_body(LostMessage(shop_id=900001, code=3, timestamp=5, data='{"ordersn": "I", "status": "SHIPPED"}'))
    assert inner == {"data": {"ordersn": "I", "status": "SHIPPED"}, "shop_id": 900001, "code": 3, "timestamp": 5}
