# hubbub: `make demo` serves the example site, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test check system-packages bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "hubbub needs Python 3.10 or newer, this is " + sys.version' 
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,redis]'
	$(BIN)/python -m pip install -q --no-deps 'djangochannelsrestframework==1.3.0'  # tests/test_thirdparty_dcrf.py: without its channels dependency
	@rm -f $(VENV)/.installed-*
	@touch $@

# `make demo REDIS=1`: the same site as two processes on the Redis layer, to show delivery between them.
REDIS_URL ?= redis://127.0.0.1:6379/0
REDIS_PREFIX ?= demo
PORT2 ?= 8001

# The demo installs hubbub alone (with the Redis extra for REDIS=1), never the test tools.
DEMO_EXTRA := $(if $(filter 1,$(REDIS)),[redis],)
DEMO_STAMP := $(VENV)/.demo-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)$(if $(DEMO_EXTRA),-redis,)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.$(DEMO_EXTRA)'
	@rm -f $(VENV)/.demo-*
	@touch $@

demo: $(DEMO_STAMP)
	$(BIN)/python examples/manage.py migrate --noinput
ifeq ($(REDIS),1)
	@$(BIN)/python -c 'import socket, sys, urllib.parse; u = urllib.parse.urlsplit(sys.argv[1]); socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), 1)' '$(REDIS_URL)' 2>/dev/null \
		|| { echo "make demo REDIS=1 needs Redis at $(REDIS_URL) (e.g. apt-get install redis-server)"; exit 1; }
	@echo "Redis layer, two processes: http://$(HOST):$(PORT)/ and http://$(HOST):$(PORT2)/ (Ctrl-C stops both)"
	@export DEMO_REDIS='$(REDIS_URL)' DEMO_REDIS_PREFIX='$(REDIS_PREFIX)'; \
	$(BIN)/python examples/manage.py runserver --noreload $(HOST):$(PORT) & first=$$!; \
	$(BIN)/python examples/manage.py runserver --noreload $(HOST):$(PORT2) & second=$$!; \
	trap 'kill $$first $$second 2>/dev/null' INT TERM EXIT; wait
else
	$(BIN)/python examples/manage.py runserver $(HOST):$(PORT)
endif

# Prerequisites run left to right: the Debian packages first (npm among them), then Python's and npm's,
# then the gates of `make check`; the suite runs under coverage and fails below COVERAGE_MIN % of hubbub/'s lines.
# Most of the suite waits on real servers and sockets, so two worker processes halve its time on two cores.
# Then the tests whose group messages reach a forward (BOTH_PATHS in tests/conftest.py, marked both_paths)
# run again on the normal path, HUBBUB_FASTLANE=0, so that they pass with and without the fastlane.
COVERAGE_MIN ?= 94
TEST_WORKERS ?= 2
test: system-packages $(STAMP) node_modules/.installed check
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --cov=hubbub --cov-report=term-missing:skip-covered \
		--cov-fail-under=$(COVERAGE_MIN) $(PYTEST_ARGS)
	HUBBUB_FASTLANE=0 $(BIN)/python -m pytest -n $(TEST_WORKERS) --no-cov -m both_paths $(PYTEST_ARGS)

# The gates (configured in pyproject.toml): lint, formatting, and strict typing of hubbub/ with django-stubs.
LINTED := hubbub tests bench examples
check: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m mypy

system-packages:
	@sh scripts/ensure-system-packages

# ESLint for hubbub.js, pinned in package-lock.json, for tests/test_hubbub_js.py. Without npm those
# tests skip (and fail under CI=true, where node and npm must be installed).
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund && touch $@; \
	else echo "npm not found: the hubbub.js lint and unit tests will be skipped (apt-get install nodejs npm)"; fi

# The benchmarks get a virtualenv of their own: they install the real Channels beside hubbub,
# which the test suite's `channels` import alias (docs/tutorial.md) must never meet.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(BENCH_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "hubbub needs Python 3.10 or newer"'
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[redis,bench]'
	@rm -f $(BENCH_VENV)/.installed-*
	@touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info
