"""The pluggable transform pipeline.

A transform is a plain function `PushEvent -> PushEvent | Skip` with no I/O. The pipeline
runs them in order and stops at the first Skip. Pipelines are named in settings
(INGEST_TRANSFORMS) as importable `module:function` (or `module.function`) names, so a
user adds a transform of their own without touching `service/`.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import ConfigError
from service.records import OrderRecord, PushEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Skip:
    """Stop the pipeline. `reason` is a short metric label.

    dead_letter=False: deliberately not forwarded (UNPAID, ping, unhandled code): 2xx.
    dead_letter=True: signed but unusable (missing fields): kept in the dead-letter topic.
    """

    reason: str
    dead_letter: bool = False
    detail: str = ""
    shop_id: str | None = None  # the dead letter's key, when the push names a shop


def shop_hint(body: dict[str, Any]) -> str | None:
    """The push's shop id (either spelling), only when it looks like one."""
    value = body.get("shop_id", body.get("shopid"))
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if text.isascii() and text.isdigit() and len(text) <= 20 else None


Transform = Callable[[PushEvent], PushEvent | Skip]


class Pipeline:
    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = tuple(transforms)

    def __call__(self, event: PushEvent) -> PushEvent | Skip:
        for transform in self.transforms:
            result = transform(event)
            if isinstance(result, Skip):
                return result
            event = result
        return event

    def route(self, event: PushEvent) -> OrderRecord | Skip:
        """What a push becomes, the same for the ingest and for recovered pushes: a record
        to forward, or a Skip (deliberate, or a dead letter: a transform that raised or
        that left no record is one too, since retrying cannot fix it)."""
        try:
            result = self(event)
        except Exception as exc:
            log.exception("transform failed")
            detail = f"{exc.__class__.__name__}: {exc}"
            return Skip("transform_error", dead_letter=True, detail=detail, shop_id=shop_hint(event.body))
        if isinstance(result, Skip):
            if result.dead_letter and result.shop_id is None:
                return dataclasses.replace(result, shop_id=shop_hint(event.body))
            return result
        if result.record is None:
            return Skip("no_record", dead_letter=True, detail="the pipeline produced no record", shop_id=result.shop_id)
        return result.record


def load_transform(name: str) -> Transform:
    module_name, sep, attr = name.partition(":")
    if not sep:
        module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"INGEST_TRANSFORMS: {name!r} is not a 'module:function' name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"INGEST_TRANSFORMS: cannot import module {module_name!r} for {name!r}: {exc}") from None
    transform = getattr(module, attr, None)
    if not callable(transform):
        raise ConfigError(f"INGEST_TRANSFORMS: {module_name!r} has no function {attr!r}")
    return transform  # type: ignore[no-any-return]


def load_pipeline(names: Sequence[str]) -> Pipeline:
    if not names:
        raise ConfigError("INGEST_TRANSFORMS: the pipeline is empty")
    return Pipeline([load_transform(n) for n in names])
