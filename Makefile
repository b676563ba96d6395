# Every target creates .venv on first use, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-unit lint schemas demo bench soak chaos stack-up stack-down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services schemas tests examples/upstream_producer.py examples/downstream_consumer.py

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

demo: $(STAMP)
	$(BIN)/agentlog demo

# The comparison's peers (LangGraph, DBOS) come with the bench extra; nothing else needs them.
$(VENV)/.bench-installed: pyproject.toml | $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(VENV)/.bench-installed

bench: $(STAMP) $(VENV)/.bench-installed
	$(BIN)/python -m tests.bench

soak: $(STAMP)
	$(BIN)/pytest -q -m soak

chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos tests/chaos

stack-up: $(STAMP)
	$(BIN)/agentlog stack up

stack-down: $(STAMP)
	$(BIN)/agentlog stack down

clean:
	rm -rf .agentlog build *.egg-info
