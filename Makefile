# The two commands a new user needs: `make run` and `make test`.
# Both install exactly the committed lock files (requirements.lock for the service,
# requirements-dev.lock for the tests and linters), never whatever the index holds today;
# `make upgrade` moves the locks forward on purpose.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
UV := $(BIN)/uv
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
DEMO_PORT ?= 8001
# One resolution for every platform, hashed, so a lock made here installs the same on a laptop.
COMPILE := pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: run test venv lint upgrade clean bench

$(UV):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

# The service's own dependencies only: `make run` needs no test tools or browsers.
$(RUN_STAMP): requirements.lock pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# The service's dependencies plus the dev set (pytest, mypy, ruff, playwright ...).
$(DEV_STAMP): requirements-dev.lock pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@ $(RUN_STAMP)

venv: $(DEV_STAMP)

## Start primewatch with config.yaml (and the bundled demo target unless PRIMETRADE_API_URL is set).
## Without PRIMEWATCH_TOKEN, a write token is made for this session (config.yaml reads
## ${PRIMEWATCH_TOKEN:-}), so acknowledging and resolving work; it is printed, never stored.
run: $(RUN_STAMP)
	$(BIN)/primewatch db upgrade
	@if [ -z "$$PRIMETRADE_API_URL" ]; then \
	  echo "starting the demo target on 127.0.0.1:$(DEMO_PORT) (set PRIMETRADE_API_URL to watch the real API)"; \
	  $(BIN)/primewatch demo-target --port $(DEMO_PORT) & demo=$$!; \
	  trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	fi; \
	if [ -z "$$PRIMEWATCH_TOKEN" ]; then \
	  PRIMEWATCH_TOKEN=$$($(BIN)/python -c 'from monitor.cli_token import new_token; print(new_token())'); \
	  export PRIMEWATCH_TOKEN; \
	  echo "write token for this session: $$PRIMEWATCH_TOKEN"; shown=$$PRIMEWATCH_TOKEN; \
	else \
	  echo "write token: the one in \$$PRIMEWATCH_TOKEN"; shown='$$PRIMEWATCH_TOKEN'; \
	fi; \
	url="http://127.0.0.1:$${PRIMEWATCH_PORT:-8000}"; \
	echo "  acknowledge: curl -X POST -H \"Authorization: Bearer $$shown\" $$url/api/v1/incidents/ID/ack  (or .../resolve)"; \
	echo "dashboard: $$url/"; \
	$(BIN)/primewatch run

## Run the whole test suite (pytest's exit code 5, "no tests", fails the run).
test: $(DEV_STAMP)
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check monitor probes slo alerts dashboards tests benchmarks
	$(BIN)/mypy

## Re-resolve both locks to the newest versions pyproject.toml allows, then run the suite:
## review `git diff requirements*.lock` and commit it when the suite passes.
upgrade: | $(UV)
	$(UV) $(COMPILE) --upgrade --extra dev --extra browser -o requirements-dev.lock
	$(UV) $(COMPILE) --upgrade -c requirements-dev.lock -o requirements.lock
	$(MAKE) lint test

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/probe_throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache
