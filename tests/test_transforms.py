import orjson
import pytest

from service.errors import ConfigError
from service.records import PushEvent
from service.settings import DEFAULT_TRANSFORMS
from transforms import Skip, load_pipeline

PIPELINE = load_pipeline(DEFAULT_TRANSFORMS.split(","))


def run(body: dict[str, object]) -> PushEvent | Skip:
    return PIPELINE(PushEvent(body=body, received_ms=1_700_000_000_123))


def test_real_shape_becomes_spec_record() -> None:
    body = orjson.loads(
        b'{"data":{"items":[],"ordersn":"220810QSK8S7BX","status":"PROCESSED","completed_scenario":"",'
        b'"update_time":1660123127},"shop_id":727720655,"code":3,"timestamp":1660123127}'
    )
    result = run(body)
    assert isinstance(result, PushEvent) and result.record is not None
    value = orjson.loads(result.record.encode())
    assert value == {
        "platform": "shopee",
        "shop_id": "727720655",
        "order_sn": "220810QSK8S7BX",
        "order_status": "PROCESSED",
        "timestamp": 1_700_000_000_123,
        "update_time": 1660123127,
        "event_id": value["event_id"],
        "code": 3,
    }
    assert len(value["event_id"]) == 32
    assert result.record.key == "shop-727720655"


def test_flat_legacy_shape_is_understood() -> None:
    result = run(
        {"shop_id": "123456", "order_sn": "TEST002", "order_status": "READY_TO_SHIP", "update_time": 1735689600}
    )
    assert isinstance(result, PushEvent) and result.record is not None
    assert (result.record.shop_id, result.record.order_sn, result.record.order_status) == (
        "123456",
        "TEST002",
        "READY_TO_SHIP",
    )
    assert result.record.update_time == 1735689600


def test_unpaid_is_skipped_not_dead_lettered() -> None:
    result = run({"data": {"ordersn": "A1", "status": "UNPAID", "update_time": 1}, "shop_id": 1, "code": 3})
    assert result == Skip("unpaid")
    legacy = run({"shop_id": "1", "order_sn": "TEST_UNPAID_001", "order_status": "UNPAID"})
    assert legacy == Skip("unpaid")


def test_verification_ping_is_skipped() -> None:
    assert run({"code": 0, "data": {"verify_info": "abc"}}) == Skip("verification")


def test_other_codes_are_skipped_with_their_code() -> None:
    result = run({"code": 4, "shop_id": 1, "data": {"ordersn": "A", "tracking_no": "T"}})
    assert result == Skip("unhandled_code", detail="4")


def test_missing_order_sn_is_dead_lettered() -> None:
    result = run({"code": 3, "shop_id": 1, "data": {"status": "READY_TO_SHIP"}})
    assert isinstance(result, Skip) and result.dead_letter and "order_sn" in result.detail


def test_missing_shop_id_is_dead_lettered() -> None:
    result = run({"code": 3, "data": {"ordersn": "A", "status": "READY_TO_SHIP"}})
    assert isinstance(result, Skip) and result.dead_letter and "shop_id" in result.detail


def test_wrong_types_are_dead_lettered() -> None:
    result = run({"code": 3, "shop_id": {"x": 1}, "data": {"ordersn": ["A"], "status": 5}})
    assert isinstance(result, Skip) and result.dead_letter
    assert run({"code": "three", "shop_id": 1}) == Skip("bad_code", dead_letter=True, detail="code is str")


def test_same_push_twice_has_same_event_id_and_new_state_a_new_one() -> None:
    body = {"data": {"ordersn": "A1", "status": "SHIPPED", "update_time": 5}, "shop_id": 7, "code": 3, "timestamp": 5}
    first, second = run(body), run(dict(body))
    assert isinstance(first, PushEvent) and isinstance(second, PushEvent)
    assert first.record and second.record and first.record.event_id == second.record.event_id
    later = run({**body, "data": {"ordersn": "A1", "status": "COMPLETED", "update_time": 9}})
    assert isinstance(later, PushEvent) and later.record and later.record.event_id != first.record.event_id


def test_msg_id_is_the_event_id_when_present() -> None:
    body = {
        "data": {"ordersn": "A1", "status": "SHIPPED", "update_time": 5},
        "shop_id": 7,
        "code": 3,
        "msg_id": "AB" * 16,
    }
    result = run(body)
    assert isinstance(result, PushEvent) and result.record and result.record.event_id == "ab" * 16


def test_user_transform_runs_from_its_name() -> None:
    pipeline = load_pipeline(
        ["transforms.shopee:normalise", "tests.plugins.custom_transforms:skip_shop_999", "transforms.shopee:to_record"]
    )
    result = pipeline(PushEvent(body={"code": 3, "shop_id": 999, "data": {"ordersn": "A"}}, received_ms=0))
    assert result == Skip("blocked_shop")


def test_dotted_name_also_loads() -> None:
    pipeline = load_pipeline(["transforms.shopee.normalise"])
    assert isinstance(pipeline(PushEvent(body={"code": 0}, received_ms=0)), Skip)


@pytest.mark.parametrize(
    "name",
    ["transforms.shopee:normalize", "transforms.shope:normalise", "nonsense", "transforms.shopee:ORDER_STATUS_CODE"],
)
def test_wrong_transform_name_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="INGEST_TRANSFORMS"):
        load_pipeline([name])
