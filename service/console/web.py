"""What every console page shares: the signed-in guard, CSRF, rendering, URL parsing."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import jinja2
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from service.console.actions import Replayer
from service.console.auth import CSRF_FIELD, Auth
from service.console.deadletters import DeadLetterIndex
from service.console.health import KafkaStatus
from service.console.metrics import ConsoleMetrics
from service.settings import Settings

HERE = Path(__file__).parent
Endpoint = Callable[[Request], Awaitable[Response]]


class NotSignedIn(Exception):
    """Raised by the guard; the app answers with a login redirect (GET) or 401."""


@dataclass(slots=True)
class Console:
    """Everything the pages use, built by create_app and started by its lifespan."""

    settings: Settings
    auth: Auth
    clock: Callable[[], float]
    pool: asyncpg.Pool | None = None
    index: DeadLetterIndex | None = None
    kafka: KafkaStatus | None = None
    replayer: Replayer | None = None
    http: httpx.AsyncClient | None = None
    metrics: ConsoleMetrics = field(default_factory=ConsoleMetrics)

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None
        return self.pool


def console(request: Request) -> Console:
    value: Console = request.app.state.console
    return value


def guarded(endpoint: Endpoint) -> Endpoint:
    """Only for a signed-in user; a POST must also carry that user's CSRF token (else 403)."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        c = console(request)
        user = c.auth.user(request)
        if user is None:
            raise NotSignedIn
        request.state.user = user
        if request.method == "POST":
            form = await request.form()
            token = form.get(CSRF_FIELD)
            if not c.auth.csrf_ok(user, token if isinstance(token, str) else None):
                raise HTTPException(403, "missing or wrong CSRF token")
            request.state.form = form
        return await endpoint(request)

    return wrapper


def form_of(request: Request) -> FormData:
    form: FormData = request.state.form
    return form


def _when(value: Any, now: float) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        moment = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    elif isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    else:
        return str(value)
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC ({age(now - moment.timestamp())})"


def age(seconds: float) -> str:
    future, s = seconds < 0, abs(seconds)
    if s < 60:
        text = f"{int(s)} s"
    elif s < 3600:
        text = f"{int(s // 60)} min"
    elif s < 86400:
        text = f"{s / 3600:.1f} h"
    else:
        text = f"{s / 86400:.1f} d"
    return f"in {text}" if future else f"{text} ago"


def make_templates(clock: Callable[[], float]) -> Jinja2Templates:
    # autoescape on for every template: letters carry attacker-controlled text
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    templates = Jinja2Templates(env=env)
    templates.env.filters["when"] = lambda value: _when(value, clock())
    templates.env.filters["age"] = age
    templates.env.globals["urlencode"] = urlencode
    return templates


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    c = console(request)
    user = getattr(request.state, "user", None)
    context.setdefault("user", user)
    context["csrf_token"] = c.auth.csrf_token(user or "")
    context["csrf_field"] = CSRF_FIELD
    context["now_ms"] = int(c.clock() * 1000)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def text_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def page_param(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1
