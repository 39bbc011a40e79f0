# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_PORT ?= 8001

.PHONY: run test venv lint clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## Start primewatch with config.yaml (and the bundled demo target unless PRIMETRADE_API_URL is set).
run: $(STAMP)
	$(BIN)/primewatch db upgrade
	@if [ -z "$$PRIMETRADE_API_URL" ]; then \
	  echo "starting the demo target on 127.0.0.1:$(DEMO_PORT) (set PRIMETRADE_API_URL to watch the real API)"; \
	  $(BIN)/primewatch demo-target --port $(DEMO_PORT) & demo=$$!; \
	  trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	fi; \
	$(BIN)/primewatch run

## Run the whole test suite (pytest's exit code 5, "no tests", fails the run).
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor probes slo alerts dashboards tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/probe_throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache
