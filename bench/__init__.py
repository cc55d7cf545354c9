"""Benchmarks run by `make bench-*` (not timed tests): each prints a table and writes its
section of docs/benchmarks.md with the commit, the date and the machine. Processes, the
environment, signed pushes and percentiles come from the tests' shared harness (tests/).

    report.py / setup.py / profile.py   tables and doc sections / topics, databases, sandbox / py-spy
    bare.py      the ingest's ceiling: a bare Starlette endpoint under serve's uvicorn options
    ingest.py    `make bench-ingest`: wrk against `serve` and against bare.py, in rounds (ingest_rounds.py)
    instant.py   serve's app with a sink that keeps nothing: HTTP and the handler alone
    kafka_floor.py  bare.py plus serve's KafkaSink: what acknowledging by Kafka alone costs
    consumer.py  `make bench-consumer` (ceiling.py: the plain-upsert ceiling); memory
    e2e.py       `make bench-e2e`: from a batch's 50th push answered to its rows visible
"""
