"""Which module may import which: shared types in one place, no circles between packages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_service_never_imports_transforms() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "service").rglob("*.py")
        if any(name == "transforms" or name.startswith("transforms.") for name in imported(p))
    ]
    assert offenders == []  # transforms import service; service loads them by name only


def test_the_shopee_client_does_not_import_the_store() -> None:
    assert "service.consume.store" not in imported(ROOT / "service" / "consume" / "shopee.py")
