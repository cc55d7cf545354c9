"""create_app(settings) -> the console's Starlette app: routes, lifespan, sign-in.

The console is internal only (its own process and Service, never behind the ingest's
Ingress). Nothing but /healthz, /metrics, /login and the stylesheet is served anonymously.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

import asyncpg
import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.console import letters_pages, pages
from service.console.actions import Replayer, write_audit
from service.console.auth import CSRF_FIELD, SESSION_COOKIE, Auth
from service.console.deadletters import DeadLetterIndex
from service.console.health import KafkaStatus
from service.console.web import HERE, Console, NotSignedIn, console, guarded, make_templates, render
from service.settings import Settings

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'none'; img-src 'self' data:; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok\n")


async def metrics(request: Request) -> Response:
    """Prometheus scrape (no sign-in, like the other services' /metrics; no secrets in it)."""
    c = console(request)
    assert c.kafka is not None and c.index is not None
    c.metrics.update(await c.kafka.lag(), await c.index.refresh())
    await c.metrics.update_recover(c.db)
    return Response(generate_latest(c.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _safe_next(value: str | None) -> str:
    # only a local path: never an open redirect to another host
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


async def login_page(request: Request) -> Response:
    if not console(request).auth.uses_passwords:
        raise HTTPException(404, "sign-in is done by the auth proxy")
    return render(request, "login.html", next=_safe_next(request.query_params.get("next")), error=None)


async def login(request: Request) -> Response:
    c = console(request)
    if not c.auth.uses_passwords:
        raise HTTPException(404, "sign-in is done by the auth proxy")
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not c.auth.csrf_ok("", token if isinstance(token, str) else None):
        raise HTTPException(403, "missing or wrong CSRF token")
    name, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/"))
    if not c.auth.check_password(name, password):
        await write_audit(c.db, name[:100] or "-", "login_failed", {}, 0)
        return render(request, "login.html", status_code=401, next=target, error="Wrong user name or password.")
    await write_audit(c.db, name, "login", {}, 0)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        c.auth.session_cookie(name),
        max_age=c.auth.session_max_age_seconds,
        httponly=True,
        samesite="strict",
        secure=c.settings.console_secure_cookies,
    )
    return response


@guarded
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


async def not_signed_in(request: Request, _: Exception) -> Response:
    if request.method == "GET" and console(request).auth.uses_passwords:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    return PlainTextResponse("sign in first\n", status_code=401)


def routes() -> list[Route | Mount]:
    return [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", pages.overview),
        Route("/dead-letters", letters_pages.dead_letters),
        Route("/dead-letters/replay", letters_pages.replay_letters, methods=["POST"]),
        Route("/dead-letters/acknowledge", letters_pages.acknowledge, methods=["POST"]),
        Route("/dead-letters/{partition:int}/{offset:int}", letters_pages.dead_letter),
        Route("/jobs/{job_id:int}", letters_pages.job_page),
        Route("/shops", pages.shops),
        Route("/shops/{shop_id}", pages.shop),
        Route("/orders", pages.orders),
        Route("/audit", pages.audit),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The console app; its lifespan connects to Postgres and Kafka."""
    settings.require("database_url", purpose="the console")
    state = Console(settings, Auth.from_settings(settings), clock)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        assert settings.database_url is not None
        options = settings.kafka_client_options()
        async with contextlib.AsyncExitStack() as stack:
            state.pool = await asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=5)
            stack.push_async_callback(state.pool.close)
            state.kafka = KafkaStatus(options, settings.kafka_topic_marketplace_orders, settings.kafka_consumer_group)
            await state.kafka.start()
            stack.push_async_callback(state.kafka.stop)
            state.index = DeadLetterIndex(options, settings.kafka_topic_dead_letter, state.kafka.partitions)
            await state.index.start()
            stack.push_async_callback(state.index.stop)
            state.http = await stack.enter_async_context(httpx.AsyncClient())
            state.replayer = Replayer(settings, state.pool, settings.kafka_topic_dead_letter)
            stack.push_async_callback(state.replayer.stop)
            yield

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={NotSignedIn: not_signed_in},
    )
    app.state.console = state
    app.state.templates = make_templates(clock)
    return app
