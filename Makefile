# make install | train | test | demo | bench | bench-all | report | format | lint      (ARGS="..." passes Hydra overrides)
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build is the one thing pinned: these releases are in this machine's local wheel cache.
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install browser train test demo bench bench-all report format lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

train: install
	$(PY) -m quickdraw.train $(ARGS)

# The demo's browser test drives Debian's Chromium through Playwright (`playwright install`
# downloads are not needed). Installed with apt when missing; the test skips, saying why,
# where it cannot be installed.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@[ -x $(CHROMIUM) ] || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install chromium; the browser test will be skipped"

test: install browser
	$(PY) -m pytest $(ARGS)

demo: install
	$(PY) -m quickdraw.demo $(ARGS)

bench: install
	$(PY) scripts/bench_data.py $(ARGS)

bench-all: install
	$(PY) scripts/bench_data.py
	$(PY) scripts/bench_train.py
	$(PY) scripts/bench_demo.py

report: install
	$(PY) -m quickdraw.report $(ARGS)

format: install
	$(VENV)/bin/ruff format quickdraw scripts tests
	$(VENV)/bin/ruff check --fix quickdraw scripts tests

lint: install
	$(VENV)/bin/ruff format --check quickdraw scripts tests
	$(VENV)/bin/ruff check quickdraw scripts tests
