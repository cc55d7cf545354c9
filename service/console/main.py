"""`python -m service console [--host] [--port 8090]` and `console hash-password`."""

from __future__ import annotations

import argparse
import getpass
import sys

import uvicorn

from service.console.auth import hash_password
from service.errors import ConfigError
from service.logs import setup_logging
from service.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        default="serve",
        choices=["serve", "hash-password"],
        help="serve the console (default), or print a password hash for CONSOLE_USERS",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090)")


def _read_password() -> str:
    """From the terminal (asked twice), or the first line of stdin when piped."""
    if sys.stdin.isatty():
        first, second = getpass.getpass("password: "), getpass.getpass("again: ")
        if first != second:
            raise ConfigError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    if args.action == "hash-password":
        password = _read_password()
        if len(password) < 8:
            raise ConfigError("a console password needs at least 8 characters")
        sys.stdout.write(hash_password(password) + "\n")
        return 0
    from service.console.app import create_app

    settings = load_settings()
    setup_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, proxy_headers=False)
    return 0
