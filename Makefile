# Sinkhole: `make run` starts everything embedded on http://127.0.0.1:8000; `make test` runs
# the whole suite. Both set up the virtualenv themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml sdk/python/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test bench lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml sdk/python/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" -e sdk/python
	@rm -f $(VENV)/.installed-*; touch $@

run: setup
	$(PY) manage.py serve $(SERVE_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) bench/ingest.py $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var .pytest_cache
