"""The consumer's liberal decoding: what other producers send, where the meaning is clear."""

import pytest

from service.records import OrderRecord, event_id_for
from tests.schemas import assert_valid_record

GOOD = {
    "platform": "shopee",
    "shop_id": "900001",
    "order_sn": "2401019ABCDEF",
    "order_status": "READY_TO_SHIP",
    "timestamp": 1_735_689_600_123,
    "update_time": 1_735_689_600,
    "event_id": "cd" * 16,
    "code": 3,
}


def test_a_numeric_shop_id_as_shopee_sends_it_is_read_as_its_string() -> None:
    record = OrderRecord.from_dict({**GOOD, "shop_id": 900001})
    assert record.shop_id == "900001" and record.key == "shop-900001"
    assert_valid_record(record.as_dict())


def test_integer_fields_sent_as_decimal_strings_are_read_as_integers() -> None:
    record = OrderRecord.from_dict({**GOOD, "timestamp": "1735689600123", "update_time": "1735689600", "code": "4"})
    assert (record.timestamp, record.update_time, record.code) == (1_735_689_600_123, 1_735_689_600, 4)


def test_a_missing_event_id_is_derived_as_the_ingest_derives_it() -> None:
    without = {k: v for k, v in GOOD.items() if k != "event_id"}
    first, again = OrderRecord.from_dict(without), OrderRecord.from_dict(dict(without))
    expected = event_id_for("900001", "2401019ABCDEF", "READY_TO_SHIP", 1_735_689_600, 3, None)
    assert first.event_id == again.event_id == expected
    other = OrderRecord.from_dict({**without, "order_status": "SHIPPED"})
    assert other.event_id != first.event_id
    assert_valid_record(first.as_dict())


@pytest.mark.parametrize("change", [{"event_id": ""}, {"event_id": 7}, {"shop_id": True}, {"shop_id": 1.5}])
def test_ambiguous_values_are_still_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="record"):
        OrderRecord.from_dict({**GOOD, **change})
