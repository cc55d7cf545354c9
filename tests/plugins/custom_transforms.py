"""A user's own transform, loaded by name from INGEST_TRANSFORMS in the tests."""

from __future__ import annotations

from service.records import PushEvent
from transforms import Skip


def skip_shop_999(event: PushEvent) -> PushEvent | Skip:
    if event.shop_id == "999":
        return Skip("blocked_shop")
    return event
