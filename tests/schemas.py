"""The published JSON Schemas (docs/schemas/), for tests that check what the code produces."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent.parent / "docs/schemas"


@cache
def _validator(name: str) -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        resource = Resource.from_contents(json.loads(path.read_text()))
        resources += [(path.name, resource), (str(resource.id()), resource)]
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=Registry().with_resources(resources))


def _assert_valid(name: str, value: Any) -> None:
    errors = sorted(_validator(name).iter_errors(value), key=str)
    assert not errors, f"{name}: {[e.message for e in errors]} in {value!r}"


def assert_valid_record(value: Any) -> None:
    _assert_valid("order-record.schema.json", value)


def assert_valid_dead_letter(value: Any) -> None:
    _assert_valid("dead-letter.schema.json", value)
