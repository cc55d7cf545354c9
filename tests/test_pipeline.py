"""Pipeline.route: what a push becomes, shared by the ingest and recovered pushes."""

from __future__ import annotations

from service.pipeline import Pipeline, Skip
from service.records import PushEvent


def _event(**body: object) -> PushEvent:
    return PushEvent(body=dict(body), received_ms=0)


def _missing_fields(event: PushEvent) -> PushEvent | Skip:
    return Skip("missing_fields", dead_letter=True, detail="no order_sn")


def _raises(event: PushEvent) -> PushEvent | Skip:
    raise KeyError("data")


def test_a_dead_letter_skip_carries_the_push_s_shop_id_in_either_spelling() -> None:
    route = Pipeline([_missing_fields]).route
    assert route(_event(shop_id=900001)) == Skip("missing_fields", True, "no order_sn", "900001")
    assert route(_event(shopid="42")) == Skip("missing_fields", True, "no order_sn", "42")
    assert route(_event(shop_id="not-a-shop")).shop_id is None  # type: ignore[union-attr]


def test_a_raising_transform_becomes_a_dead_letter_not_an_error() -> None:
    routed = Pipeline([_raises]).route(_event(shop_id=7))
    assert routed == Skip("transform_error", True, "KeyError: 'data'", "7")


def test_a_pipeline_that_leaves_no_record_becomes_a_dead_letter() -> None:
    routed = Pipeline([lambda event: event]).route(_event(shop_id=7))
    assert isinstance(routed, Skip) and (routed.reason, routed.dead_letter) == ("no_record", True)
