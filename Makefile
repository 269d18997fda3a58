# hubbub: `make demo` serves the example site, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test bench clean

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
PORT2 ?= 8001

demo: $(STAMP)
	$(BIN)/python examples/manage.py migrate --noinput
ifeq ($(REDIS),1)
	@$(BIN)/python -c 'import socket; socket.create_connection(("127.0.0.1", 6379), 1)' 2>/dev/null \
		|| { echo "make demo REDIS=1 needs Redis on 127.0.0.1:6379 (e.g. apt-get install redis-server)"; exit 1; }
	@echo "Redis layer, two processes: http://$(HOST):$(PORT)/ and http://$(HOST):$(PORT2)/ (Ctrl-C stops both)"
	@export DEMO_REDIS=$(REDIS_URL); \
	$(BIN)/python examples/manage.py runserver --noreload $(HOST):$(PORT) & first=$$!; \
	$(BIN)/python examples/manage.py runserver --noreload $(HOST):$(PORT2) & second=$$!; \
	trap 'kill $$first $$second 2>/dev/null' INT TERM EXIT; wait
else
	$(BIN)/python examples/manage.py runserver $(HOST):$(PORT)
endif

test: $(STAMP)
	@sh scripts/ensure-chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) build *.egg-info
