"""The command line: unknown commands, and an image without the sandbox."""

from __future__ import annotations

import sys

import pytest

from service.__main__ import main


def test_an_unknown_command_prints_the_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serv"]) == 2
    assert "usage: python -m service <command>" in capsys.readouterr().err


def test_sandbox_without_the_sandbox_package_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "service.sandbox.cli", None)  # as in the image: not installed
    assert main(["sandbox", "serve"]) == 2
    err = capsys.readouterr().err
    assert err == "the Shopee sandbox is not installed here: it is for local runs and tests\n"
