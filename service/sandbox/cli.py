"""python -m service sandbox serve | push | demo-shops

    serve       the simulated Shopee API on 127.0.0.1 (uvicorn)
    push        send signed code-3 pushes to a receiver, write a JSON ledger
    demo-shops  print demo shops' credentials or upsert them into merchant_shopee_config

Partner id and key default to SHOPEE_PARTNER_ID / SHOPEE_PARTNER_KEY, else to the
sandbox's own demo values; the push key to SHOPEE_PUSH_KEY, else the partner key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from service.errors import ConfigError
from service.logs import setup_logging
from service.sandbox.api import create_sandbox_app
from service.sandbox.config import DEFAULT_PARTNER_ID, DEFAULT_PARTNER_KEY, Faults, SandboxConfig, shop_range
from service.sandbox.demo_shops import computed_shops, fetch_shops, insert_shops
from service.sandbox.plan import SHOPEE_RETRY_DELAYS_SECONDS, PushConfig
from service.sandbox.push import send_pushes
from service.settings import Settings, load_settings

# Like real HTTP servers (nginx keeps idle connections 75 s), and longer than the Shopee
# client keeps them (KEEPALIVE_EXPIRY_SECONDS): otherwise the server's close races the
# client's reuse of a pooled connection and costs a spurious shopee_network retry.
SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "off",
    "timeout_keep_alive": 75,
}


def _partner(args: argparse.Namespace, settings: Settings) -> tuple[int, str]:
    partner_id = args.partner_id or settings.shopee_partner_id or DEFAULT_PARTNER_ID
    key = args.partner_key or (settings.shopee_partner_key.get_secret_value() if settings.shopee_partner_key else "")
    return int(partner_id), key or DEFAULT_PARTNER_KEY


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partner-id", type=int, default=None)
    p.add_argument("--partner-key", default=None)
    p.add_argument("--shops", type=int, default=0, help="number of demo shops")
    p.add_argument("--shop-id-base", type=int, default=100000, help="first demo shop id")
    p.add_argument("--token-ttl-seconds", type=float, default=14400.0)
    p.add_argument("--log-level", default="INFO")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    serve = sub.add_parser("serve", help="the simulated Shopee API")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8900)
    serve.add_argument("--strict-shops", action="store_true", help="accept only registered shops")
    serve.add_argument("--auto-orders", action=argparse.BooleanOptionalAction, default=True)
    serve.add_argument("--unknown-prefix", default="UNKNOWN", help="SNs that never exist under --auto-orders")
    serve.add_argument("--token-grace-seconds", type=float, default=300.0)
    serve.add_argument("--refresh-ttl-seconds", type=float, default=30 * 86400.0)
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500 error_server")
    serve.add_argument("--unavailable-rate", type=float, default=0.0, help="fraction answered bare 503")
    serve.add_argument("--rate-limit-per-minute", type=int, default=0, help="per shop; 0 = off")
    serve.add_argument("--seed", type=int, default=None)

    push = sub.add_parser("push", help="send signed order status pushes")
    push.add_argument("--url", required=True, help="where to POST the pushes")
    push.add_argument("--callback-url", default=None, help="URL in the signature (default: --url)")
    push.add_argument("--push-key", default=None)
    push.add_argument("--partner-key", default=None)
    push.add_argument("--shops", type=int, default=1)
    push.add_argument("--orders", type=int, default=10)
    push.add_argument("--shop-id-base", type=int, default=100000)
    push.add_argument("--duplicates", type=float, default=0.0, help="fraction of pushes delivered twice")
    push.add_argument("--out-of-order", action="store_true")
    push.add_argument("--concurrency", type=int, default=10)
    push.add_argument("--include-unpaid", action="store_true")
    push.add_argument("--cancel-fraction", type=float, default=0.1)
    push.add_argument("--time-scale", type=float, default=1.0, help="divide Shopee's retry delays by this")
    push.add_argument("--no-retries", action="store_true")
    push.add_argument("--timeout-seconds", type=float, default=3.0)
    push.add_argument("--order-sn-prefix", default="")
    push.add_argument("--seed", type=int, default=None)
    push.add_argument("--lost-fraction", type=float, default=0.0, help="pushes lost at once (to the lost queue)")
    push.add_argument("--silent-fraction", type=float, default=0.0, help="order changes never pushed")
    push.add_argument("--ledger", type=Path, default=None, help="write the JSON ledger here")
    push.add_argument("--sandbox-url", default=None, help="register orders and lost pushes with this sandbox")
    push.add_argument("--log-level", default="WARNING")

    demo = sub.add_parser("demo-shops", help="demo shops' credentials: print or write to Postgres")
    _common(demo)
    demo.add_argument("--database-url", default=None, help="default: DATABASE_URL")
    demo.add_argument("--print", dest="print_only", action="store_true", help="print JSON lines, write nothing")
    demo.add_argument("--sandbox-url", default=None, help="ask a running sandbox instead of computing tokens")
    return parser


def serve(args: argparse.Namespace, settings: Settings) -> int:
    partner_id, partner_key = _partner(args, settings)
    try:
        faults = Faults().updated(
            {
                "latency_ms": args.latency_ms,
                "error_rate": args.error_rate,
                "unavailable_rate": args.unavailable_rate,
                "rate_limit_per_minute": args.rate_limit_per_minute,
            }
        )
    except ValueError as exc:
        raise ConfigError(f"sandbox faults: {exc}") from None
    config = SandboxConfig(
        partner_id=partner_id,
        partner_key=partner_key,
        initial_shops=shop_range(args.shops, args.shop_id_base),
        strict_shops=args.strict_shops,
        auto_orders=args.auto_orders,
        unknown_prefix=args.unknown_prefix,
        token_ttl_seconds=args.token_ttl_seconds,
        token_grace_seconds=args.token_grace_seconds,
        refresh_ttl_seconds=args.refresh_ttl_seconds,
        faults=faults,
        seed=args.seed,
    )
    app = create_sandbox_app(config)
    uvicorn.run(app, host=args.host, port=args.port, **SERVER_OPTIONS)
    return 0


def push(args: argparse.Namespace, settings: Settings) -> int:
    key = args.push_key or args.partner_key
    if not key and settings.push_key is not None:
        key = settings.push_key.get_secret_value()
    config = PushConfig(
        url=args.url,
        push_key=key or DEFAULT_PARTNER_KEY,
        callback_url=args.callback_url,
        shops=args.shops,
        orders=args.orders,
        shop_id_base=args.shop_id_base,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        concurrency=args.concurrency,
        include_unpaid=args.include_unpaid,
        cancel_fraction=args.cancel_fraction,
        time_scale=args.time_scale,
        retry_delays_seconds=() if args.no_retries else SHOPEE_RETRY_DELAYS_SECONDS,
        timeout_seconds=args.timeout_seconds,
        order_sn_prefix=args.order_sn_prefix,
        seed=args.seed,
        sandbox_url=args.sandbox_url,
        lost_fraction=args.lost_fraction,
        silent_fraction=args.silent_fraction,
    )
    ledger = asyncio.run(send_pushes(config))
    if args.ledger is not None:
        args.ledger.write_bytes(ledger.to_json())
    sys.stdout.write(orjson.dumps(ledger.summary()).decode() + "\n")
    return 0


def demo_shops(args: argparse.Namespace, settings: Settings) -> int:
    partner_id, partner_key = _partner(args, settings)
    shop_ids = list(shop_range(args.shops, args.shop_id_base))
    if args.sandbox_url:
        shops = asyncio.run(fetch_shops(args.sandbox_url, shop_ids))
    else:
        shops = computed_shops(partner_id, partner_key, shop_ids, time.time(), args.token_ttl_seconds)
    if args.print_only:
        sys.stdout.write("".join(orjson.dumps(s).decode() + "\n" for s in shops))
        return 0
    database_url = args.database_url
    if not database_url:
        settings.require("database_url", purpose="sandbox demo-shops (or pass --print)")
        assert settings.database_url is not None
        database_url = settings.database_url.get_secret_value()
    written = asyncio.run(insert_shops(database_url, shops))
    sys.stdout.write(f"{written} demo shops written to merchant_shopee_config\n")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    settings = load_settings()
    commands = {"serve": serve, "push": push, "demo-shops": demo_shops}
    return commands[args.command](args, settings)
