"""/dead-letters: reason groups, the filtered list, one letter, replay (confirm, then a job)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.console import actions, queries
from service.console.deadletters import Entry, LetterFilter, decoded_detail, group_by_reason
from service.console.web import console, form_of, guarded, page_param, render
from service.errors import ConfigError
from service.replay import parse_time_ms

FILTER_FIELDS = ("reason", "shop_id", "source", "order_sn", "since", "until")


def letter_filter(get: Any) -> LetterFilter:
    """A LetterFilter from query parameters or form fields (same names)."""

    def text(name: str) -> str | None:
        value = str(get(name) or "").strip()
        return value or None

    def moment(name: str) -> int | None:
        value = text(name)
        try:
            return parse_time_ms(value) if value else None
        except ConfigError:
            raise HTTPException(400, f"{name}: not an ISO time or unix seconds") from None

    return LetterFilter(
        reason=text("reason"),
        shop_id=text("shop_id"),
        source=text("source"),
        order_sn=text("order_sn"),
        since_ms=moment("since"),
        until_ms=moment("until"),
    )


def _query_of(get: Any) -> dict[str, str]:
    return {k: str(v) for k in FILTER_FIELDS if (v := get(k))}


async def _entries(request: Request) -> tuple[list[Entry], set[tuple[int, int]]]:
    c = console(request)
    assert c.index is not None
    entries = await c.index.refresh()
    return entries, await queries.replayed_positions(c.db, c.index.topic)


@guarded
async def dead_letters(request: Request) -> Response:
    c = console(request)
    assert c.index is not None
    entries, replayed = await _entries(request)
    flt = letter_filter(request.query_params.get)
    page = page_param(request)
    matching = [e for e in reversed(entries) if flt.match(e)]  # newest first
    start = (page - 1) * queries.PAGE_SIZE
    pending = sum(1 for e in matching if e.replayable and (e.partition, e.offset) not in replayed)
    return render(
        request,
        "dead_letters.html",
        groups=group_by_reason(entries, replayed),
        acks=await queries.reason_acks(c.db, c.index.topic),
        letters=matching[start : start + queries.PAGE_SIZE],
        total=len(matching),
        pending=pending,
        replayed=replayed,
        page=page,
        has_next=start + queries.PAGE_SIZE < len(matching),
        query=_query_of(request.query_params.get),
        topic=c.index.topic,
    )


@guarded
async def dead_letter(request: Request) -> Response:
    c = console(request)
    assert c.index is not None
    partition, offset = int(request.path_params["partition"]), int(request.path_params["offset"])
    value = await c.index.fetch(partition, offset)
    if value is None:
        raise HTTPException(404, "no such dead letter")
    replayed = await queries.replayed_positions(c.db, c.index.topic)
    return render(
        request,
        "dead_letter.html",
        partition=partition,
        offset=offset,
        replayed=(partition, offset) in replayed,
        **decoded_detail(value),
    )


def _positions(form: Any) -> list[tuple[int, int]]:
    picked = []
    for item in form.getlist("letter"):
        partition, _, offset = str(item).partition(":")
        try:
            picked.append((int(partition), int(offset)))
        except ValueError:
            raise HTTPException(400, f"not a letter position: {item!r}") from None
    return picked


@guarded
async def replay_letters(request: Request) -> Response:
    """Step 1 (no `confirm`): show the dry-run count. Step 2 (`confirm=yes`): replay."""
    c = console(request)
    assert c.replayer is not None
    form = form_of(request)
    entries, replayed = await _entries(request)
    scope = str(form.get("scope") or "selected")
    flt = letter_filter(form.get)
    if scope == "all":
        chosen = [e for e in entries if flt.match(e)]
    else:
        wanted = set(_positions(form))
        if not wanted:
            raise HTTPException(400, "no letters selected")
        chosen = [e for e in entries if (e.partition, e.offset) in wanted]
    todo = [(e.partition, e.offset) for e in chosen if e.replayable and (e.partition, e.offset) not in replayed]
    filter_desc: dict[str, Any] = {"scope": scope, **flt.as_dict()}
    if scope != "all":
        filter_desc["letters"] = [f"{p}:{o}" for p, o in sorted({(e.partition, e.offset) for e in chosen})][:100]
    if form.get("confirm") != "yes":
        return render(
            request,
            "replay_confirm.html",
            chosen=len(chosen),
            todo=len(todo),
            already=sum(1 for e in chosen if (e.partition, e.offset) in replayed),
            not_replayable=sum(1 for e in chosen if not e.replayable),
            scope=scope,
            fields={k: str(form.get(k)) for k in FILTER_FIELDS if form.get(k)},
            letters=[str(x) for x in form.getlist("letter")],
        )
    job = await c.replayer.start(todo, request.state.user, filter_desc)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@guarded
async def job_page(request: Request) -> Response:
    c = console(request)
    assert c.replayer is not None
    job = c.replayer.jobs.get(int(request.path_params["job_id"]))
    if job is None:
        raise HTTPException(404, "no such job (jobs are kept until the console restarts)")
    return render(request, "job.html", job=job)


@guarded
async def acknowledge(request: Request) -> Response:
    c = console(request)
    assert c.index is not None
    reason = str(form_of(request).get("reason") or "").strip()
    if not reason:
        raise HTTPException(400, "reason is required")
    await actions.acknowledge(c.db, c.index.topic, reason, request.state.user)
    return RedirectResponse("/dead-letters?" + urlencode({"reason": reason}), status_code=303)
