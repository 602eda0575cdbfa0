# make install | train | test | demo | bench | bench-all | report | docs | dist | format | lint | web-deps      (ARGS="..." passes Hydra overrides)
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build is the one thing pinned: these releases are in this machine's local wheel cache.
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install browser postgres web-deps train test demo bench bench-all report docs dist format lint

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

# The shared-study test starts a PostgreSQL server of its own (initdb/pg_ctl in a temporary
# folder, loopback only): Debian's postgresql, installed with apt when missing; the test skips,
# saying why, where it cannot be installed or started.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "warning: could not install postgresql; the PostgreSQL study test will be skipped"

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

test: install browser postgres web-deps
	$(PY) -m pytest $(ARGS)

demo: install
	$(PY) -m quickdraw.demo $(ARGS)

bench: install
	$(PY) -m benchmarks.data $(ARGS)

bench-all: install
	$(PY) -m benchmarks.data
	$(PY) -m benchmarks.train
	$(PY) -m benchmarks.demo

report: install
	$(PY) -m quickdraw.report $(ARGS)

# The manual (docs/, mkdocs.yml) as a static site in site/: broken links and anchors fail the build.
docs: install
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# sdist + wheel in dist/, configs and assets inside; twine checks their metadata renders on PyPI.
dist: install
	rm -rf dist
	$(PY) -m build --quiet --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

format: install
	$(VENV)/bin/ruff format quickdraw hydra_plugins benchmarks tests
	$(VENV)/bin/ruff check --fix quickdraw hydra_plugins benchmarks tests

# ruff, then the layers contract: lower layers never import higher ones ([tool.importlinter]).
lint: install
	$(VENV)/bin/ruff format --check quickdraw hydra_plugins benchmarks tests
	$(VENV)/bin/ruff check quickdraw hydra_plugins benchmarks tests
	$(VENV)/bin/lint-imports
