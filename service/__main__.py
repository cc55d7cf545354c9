"""python -m service serve | consume | migrate | replay | sandbox

Each command lives in its own module with `add_arguments(parser)` and `run(args) -> int`;
this file only parses the command line, sets up logging, and turns configuration errors
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from service.errors import ConfigError

COMMANDS = {
    "serve": ("service.ingest.server", "the HTTP ingest service (uvicorn)"),
    "consume": ("service.consume.main", "the consumer: batch, throttle, enrich, upsert"),
    "migrate": ("service.migrate", "create or upgrade the database schema (idempotent)"),
    "replay": ("service.replay", "re-publish dead letters to the main topic"),
    "sandbox": ("service.sandbox.cli", "a local Shopee simulator (never for production)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, add_help=name != "sandbox")
        if name == "sandbox":
            # the sandbox has sub-commands of its own and parses them itself
            sp.add_argument("rest", nargs=argparse.REMAINDER)
            continue
        importlib.import_module(module_name).add_arguments(sp)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        if args.command == "sandbox":
            return int(module.main(args.rest))
        return int(module.run(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)  # noqa: T201 - the one-line start-up error
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
