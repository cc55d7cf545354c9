"""Benchmarks run by `make bench-*` (not timed tests): each prints a table and writes it to
docs/benchmarks.md together with the commit, the date and the machine.

    common.py    machine info, tables, docs/benchmarks.md sections, processes, Kafka/Postgres helpers
    bare.py      the ceiling for the ingest benchmark: a bare Starlette endpoint, same server stack
    ingest.py    `make bench-ingest`: wrk against `serve` and against bare.py
    consumer.py  `make bench-consumer`: drain a preloaded topic; the plain-upsert ceiling; memory
    e2e.py       `make bench-e2e`: from a batch's 50th push answered to its rows visible
    wrk/         the wrk Lua script (signed pushes, status counts, optional pacing)
"""
