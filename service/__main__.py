"""python -m service serve | consume | migrate | replay | sandbox | recover

Each command lives in its own module with `add_arguments(parser)` and `run(args) -> int`
(`sandbox`, which has subcommands, with `main(argv) -> int`) and sets up its own logging.
This file only picks the command, imports just that module, and turns failures into
exit codes:

    0    done (or stopped by SIGTERM/SIGINT and shut down cleanly)
    1    unexpected failure (logged once, with its traceback, as JSON)
    2    configuration error: one line on stderr naming the variable
    3    a dependency (Kafka, Postgres) unreachable at start-up: one line on stderr
    130  interrupted before the command installed its own signal handling
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from service.errors import ConfigError, DependencyUnavailable

EXIT_FAILURE, EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 1, 2, 3, 130

COMMANDS = {
    "serve": ("service.ingest.server", "the HTTP ingest service (uvicorn)"),
    "consume": ("service.consume.main", "the consumer: batch, throttle, enrich, upsert"),
    "migrate": ("service.migrate", "create or upgrade the database schema (idempotent)"),
    "replay": ("service.replay", "re-publish dead letters to the main topic"),
    "sandbox": ("service.sandbox.cli", "a local Shopee simulator (never for production)"),
    "recover": ("service.recover.main", "fetch lost pushes and reconcile orders with Shopee"),
    "console": ("service.console.main", "the internal operations console (web UI); hash-password"),
}


def usage() -> str:
    lines = ["usage: python -m service <command> [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines.append("\n`python -m service <command> --help` shows a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = not argv or argv[0] in ("-h", "--help")
        print(usage(), file=sys.stdout if known else sys.stderr)
        return 0 if known else 2
    command, rest = argv[0], argv[1:]
    # only the chosen command is imported, and it parses its own options
    try:
        module = importlib.import_module(COMMANDS[command][0])
    except ModuleNotFoundError as exc:
        if command != "sandbox" or not (exc.name or "").startswith("service.sandbox"):
            raise
        print("the Shopee sandbox is not installed here: it is for local runs and tests", file=sys.stderr)  # noqa: T201
        return 2
    try:
        if command == "sandbox":
            return int(module.main(rest))
        parser = argparse.ArgumentParser(prog=f"python -m service {command}", description=COMMANDS[command][1])
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(rest)))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)  # noqa: T201 - the one-line start-up error
        return EXIT_CONFIG
    except DependencyUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)  # noqa: T201 - the one-line start-up error
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        logging.getLogger("service").exception("%s failed", command)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
