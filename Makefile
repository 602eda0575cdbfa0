# make install | train | test | demo | bench | format      (ARGS="..." passes Hydra overrides)
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build is the one thing pinned: these releases are in this machine's local wheel cache.
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install train test demo bench format lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

train: install
	$(PY) -m quickdraw.train $(ARGS)

test: install
	$(PY) -m pytest $(ARGS)

demo: install
	$(PY) -m quickdraw.demo $(ARGS)

bench: install
	$(PY) scripts/bench_data.py $(ARGS)

format: install
	$(VENV)/bin/ruff format quickdraw scripts tests
	$(VENV)/bin/ruff check --fix quickdraw scripts tests

lint: install
	$(VENV)/bin/ruff format --check quickdraw scripts tests
	$(VENV)/bin/ruff check quickdraw scripts tests
