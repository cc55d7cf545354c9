"""Every record the code produces matches the schemas published in docs/schemas/."""

import orjson
import pytest

from service.records import DeadLetter, OrderRecord, PushEvent
from service.settings import DEFAULT_TRANSFORMS
from tests.pushes import legacy_push, real_push
from tests.schemas import assert_valid_dead_letter, assert_valid_record
from transforms import load_pipeline

PIPELINE = load_pipeline(DEFAULT_TRANSFORMS.split(","))


def produced(body: bytes) -> OrderRecord:
    event = PIPELINE(PushEvent(body=orjson.loads(body), received_ms=1_735_689_600_123))
    assert isinstance(event, PushEvent) and event.record is not None
    return event.record


@pytest.mark.parametrize(
    "body",
    [
        real_push(900001, "2401019ABCDEF"),
        legacy_push("123456", "TEST002"),
    ],
)
def test_records_built_by_the_ingest_pipeline_match_the_schema(body: bytes) -> None:
    assert_valid_record(orjson.loads(produced(body).encode()))


def test_dead_letters_of_both_kinds_match_the_schema() -> None:
    raw = DeadLetter.for_raw_body("invalid_json", "x" * 900, b"\xff{", 1, "12")
    record = produced(real_push(900001, "2401019ABCDEF"))
    with_record = DeadLetter(
        reason="shop_not_found", source="consumer", failed_at_ms=1, shop_id="900001", record=record.as_dict()
    )
    for letter in (raw, with_record):
        assert_valid_dead_letter(orjson.loads(letter.encode()))


def test_the_schema_refuses_what_the_consumer_would_dead_letter() -> None:
    with pytest.raises(AssertionError, match="shop_id"):
        assert_valid_record({"platform": "shopee", "order_sn": "X", "timestamp": 1, "event_id": "e", "code": 3})
    with pytest.raises(AssertionError, match="any of the given schemas"):
        assert_valid_dead_letter({"reason": "r", "source": "consumer", "failed_at_ms": 1, "attempts": 1})
