"""The container image, checked without Docker: the Dockerfile is multi-stage, non-root,
runs `python -m service`, and copies what it needs and nothing it must not ship.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib

import pytest

from tests.k8s_checks import (
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    dockerfile_problems,
    dockerfile_stages,
)

# -- the Dockerfile ----------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_runs_the_service() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('FROM python:3.11-slim\nCOPY . .\nENTRYPOINT ["python", "-m", "service"]\n', "multi-stage"),
        ("FROM a AS b\nRUN x\nFROM a\nUSER root\n", "root"),
        ('FROM a AS b\nFROM a\nUSER 10001\nCOPY . /app\nENTRYPOINT ["python", "-m", "service"]\n', "build context"),
        ('FROM a AS b\nFROM a\nUSER 10001\nENTRYPOINT ["python", "app.py"]\n', "ENTRYPOINT"),
    ],
)
def test_dockerfile_check_catches(broken: str, expected: str) -> None:
    assert any(expected in p for p in dockerfile_problems(broken))


def test_dockerfile_builder_copies_exist_and_are_not_dockerignored() -> None:
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for stage in dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8")):
        for keyword, rest in stage:
            if keyword == "COPY" and "--from=" not in rest:
                sources.extend(json.loads(rest)[:-1] if rest.startswith("[") else rest.split()[:-1])
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get("readme")
    needed = {"pyproject.toml", "service", "transforms"} | ({readme} if isinstance(readme, str) else set())
    assert needed <= set(sources), "the builder must copy what `pip install .` reads"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"
    assert {".git", ".venv", ".env"} <= set(ignored)


def test_the_image_leaves_the_sandbox_out_and_nothing_it_ships_imports_it() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert "service/sandbox" in ignored
    shipped = [p for p in (ROOT / "service").rglob("*.py") if "sandbox" not in p.relative_to(ROOT).parts]
    shipped += list((ROOT / "transforms").rglob("*.py"))
    importing = re.compile(r"^\s*(from|import)\s+service\.sandbox\b", re.MULTILINE)
    assert [str(p.relative_to(ROOT)) for p in shipped if importing.search(p.read_text(encoding="utf-8"))] == []
