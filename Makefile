# Thin entry points; CI calls the same targets a person does.
PY        ?= .venv/bin/python
PYTHON3   ?= python3
KAFKA_PORT ?= 9092
PG_PORT    ?= 55432
# Tests use their own ports so they never touch a broker or database you run by hand.
TEST_KAFKA_PORT ?= 19092
TEST_PG_PORT    ?= 55433
PYTEST_ARGS ?=

.PHONY: help venv kafka-fetch kafka-up kafka-down kafka-wipe pg-up pg-down test test-unit lint typecheck \
        run demo bench bench-ingest bench-consumer bench-e2e bench-console bench-soak clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

venv: .venv/.installed ## create .venv and install the project with dev extras
.venv/.installed: pyproject.toml
	$(PYTHON3) -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[dev]'
	touch $@

kafka-fetch: ## download the Apache Kafka broker jars from Maven Central (once)
	scripts/kafka.sh fetch

kafka-up: venv ## start the local Kafka (KAFKA_PORT, default 9092), keeping its data; create missing topics
	KAFKA_PORT=$(KAFKA_PORT) scripts/kafka.sh up
	$(PY) scripts/create_topics.py 127.0.0.1:$(KAFKA_PORT) marketplace.orders:12 marketplace.orders.dlq:1

kafka-down: ## stop the local Kafka (its topics and records are kept for the next kafka-up)
	KAFKA_PORT=$(KAFKA_PORT) scripts/kafka.sh down

kafka-wipe: ## stop the local Kafka and delete its topics, records and offsets
	KAFKA_PORT=$(KAFKA_PORT) scripts/kafka.sh wipe

pg-up: ## start a throwaway Postgres 15 cluster (PG_PORT, default 55432)
	PG_PORT=$(PG_PORT) scripts/pg.sh up

pg-down: ## stop and delete the throwaway Postgres cluster
	PG_PORT=$(PG_PORT) scripts/pg.sh down

test: venv ## the whole test suite against a real local Kafka and Postgres (started and stopped here)
	scripts/with-services.sh $(TEST_KAFKA_PORT) $(TEST_PG_PORT) $(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv ## only the tests that need no broker or database
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) and mypy --strict
	$(PY) -m ruff check service transforms tests scripts bench
	$(PY) -m ruff format --check service transforms tests scripts bench
	$(PY) -m mypy

run: venv ## the whole system locally: Kafka, Postgres, sandbox Shopee, ingest, consumer
	scripts/run-local.sh

demo: venv ## send a burst of signed pushes to `make run` and show the rows
	$(PY) scripts/demo.py

bench: bench-ingest bench-consumer bench-e2e bench-console bench-soak ## all benchmarks; writes docs/benchmarks.md

bench-ingest: venv
	scripts/with-services.sh $(TEST_KAFKA_PORT) $(TEST_PG_PORT) $(PY) -m bench.ingest

bench-consumer: venv
	scripts/with-services.sh $(TEST_KAFKA_PORT) $(TEST_PG_PORT) $(PY) -m bench.consumer

bench-e2e: venv
	scripts/with-services.sh $(TEST_KAFKA_PORT) $(TEST_PG_PORT) $(PY) -m bench.e2e

bench-console: venv ## the console's dead-letter pages with 100,000 letters in the topic
	scripts/with-services.sh $(TEST_KAFKA_PORT) $(TEST_PG_PORT) $(PY) -m bench.console

bench-soak: venv ## production-shaped soak: 300 pushes/s, 2,000 shops, 3 consumers, 10 min (SOAK_SECONDS, SOAK_RATE)
	scripts/with-services.sh $(TEST_KAFKA_PORT) $(TEST_PG_PORT) $(PY) -m bench.soak

clean: ## remove caches (keeps the downloaded Kafka jars)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
