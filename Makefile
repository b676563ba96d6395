# Every target creates .venv on first use, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser test test-unit lint schemas demo bench profile soak chaos stack-up stack-down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP) browser
	$(BIN)/pytest -q

# The console's browser test drives Debian's Chromium (never a browser download). Installed
# here when missing and apt-get can (root); otherwise that one test skips and says why.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the console's browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no /usr/bin/chromium and no root apt-get: the browser test will skip"; fi; }

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

# Where each service spends its CPU under load (py-spy); see docs/benchmarks.md.
profile: $(STAMP)
	$(BIN)/pip install -q py-spy
	$(BIN)/python -m tests.bench.profile

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
