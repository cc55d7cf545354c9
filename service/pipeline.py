"""The pluggable transform pipeline.

A transform is a plain function `PushEvent -> PushEvent | Skip` with no I/O. The pipeline
runs them in order and stops at the first Skip. Pipelines are named in settings
(INGEST_TRANSFORMS) as importable `module:function` (or `module.function`) names, so a
user adds a transform of their own without touching `service/`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.errors import ConfigError
from service.records import PushEvent


@dataclass(frozen=True, slots=True)
class Skip:
    """Stop the pipeline. `reason` is a short metric label.

    dead_letter=False: deliberately not forwarded (UNPAID, ping, unhandled code): 2xx.
    dead_letter=True: signed but unusable (missing fields): kept in the dead-letter topic.
    """

    reason: str
    dead_letter: bool = False
    detail: str = ""


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
