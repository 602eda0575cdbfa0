# make install | train | test | demo | bench | bench-all | report | format | lint | web-deps      (ARGS="..." passes Hydra overrides)
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build is the one thing pinned: these releases are in this machine's local wheel cache.
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install browser web-deps train test demo bench bench-all report format lint

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

# onnxruntime-web, vendored into pages by `python -m quickdraw.export ... format=web`: npm's
# package at a pinned version, kept in a build cache (git-ignored), never fetched from a CDN.
ORT_WEB ?= 1.30.0
WEB_DEPS := build/web-deps/node_modules/onnxruntime-web/package.json

web-deps: $(WEB_DEPS)

$(WEB_DEPS):
	@command -v npm >/dev/null || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm >/dev/null; } || \
	  { echo "error: npm not found and not installable; install Node.js and npm, then make web-deps"; exit 1; }
	mkdir -p build/web-deps
	npm install --prefix build/web-deps --no-audit --no-fund --silent onnxruntime-web@$(ORT_WEB)

test: install browser web-deps
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
