import hashlib

import orjson
import pytest

from service.records import DEAD_LETTER_BODY_BYTES, DeadLetter, OrderRecord

GOOD = {
    "platform": "shopee",
    "shop_id": "727720655",
    "order_sn": "220810QSK8S7BX",
    "order_status": "PROCESSED",
    "timestamp": 1_700_000_000_123,
    "update_time": 1660123127,
    "event_id": "ab" * 16,
    "code": 3,
}


def test_record_round_trips_through_its_encoding() -> None:
    record = OrderRecord.from_dict(GOOD)
    assert orjson.loads(record.encode()) == GOOD
    assert OrderRecord.decode(record.encode()) == record
    assert record.as_dict() == GOOD and record.key == "shop-727720655"


def test_unknown_fields_are_ignored_and_optional_ones_default() -> None:
    minimal = {k: GOOD[k] for k in ("shop_id", "order_sn", "timestamp", "event_id")}
    record = OrderRecord.from_dict({**minimal, "future_field": 1})
    assert (record.platform, record.order_status, record.update_time, record.code) == ("shopee", None, None, 3)


@pytest.mark.parametrize(
    "change",
    [
        {"shop_id": -1},
        {"shop_id": ""},
        {"order_sn": None},
        {"event_id": 5},
        {"timestamp": "17000000001x"},
        {"timestamp": True},
        {"update_time": 1.5},
        {"order_status": 3},
        {"code": "three"},
    ],
)
def test_records_of_the_wrong_shape_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="record"):
        OrderRecord.from_dict({**GOOD, **change})


@pytest.mark.parametrize("value", [b"", b"[]", b"not json", b'"x"'])
def test_undecodable_values_raise_value_error(value: bytes) -> None:
    with pytest.raises(ValueError):
        OrderRecord.decode(value)


def test_dead_letter_keeps_the_exact_raw_body() -> None:
    letter = DeadLetter.for_raw_body("invalid_json", "detail", b"\xff\x00{", 5, "12")
    decoded = DeadLetter.decode(letter.encode())
    assert decoded.raw_body() == b"\xff\x00{" and decoded.key == "shop-12" and decoded.source == "ingest"


def test_a_huge_body_keeps_its_head_and_the_detail_gives_its_size_and_digest() -> None:
    body = b"x" * DEAD_LETTER_BODY_BYTES + b"tail"
    letter = DeadLetter.for_raw_body("invalid_json", "Expecting value", body, 5)
    assert letter.raw_body() == body[:DEAD_LETTER_BODY_BYTES]
    digest = hashlib.sha256(body).hexdigest()
    assert letter.detail == (
        f"raw body truncated to {DEAD_LETTER_BODY_BYTES} of {len(body)} bytes (sha256 {digest}); Expecting value"
    )
    assert len(letter.encode()) < 1_000_000  # Kafka's default largest record is 1 MiB


def test_a_body_at_the_limit_is_kept_whole() -> None:
    body = b"y" * DEAD_LETTER_BODY_BYTES
    letter = DeadLetter.for_raw_body("invalid_json", "Expecting value", body, 5, source="consumer")
    assert (letter.raw_body(), letter.detail, letter.source) == (body, "Expecting value", "consumer")
