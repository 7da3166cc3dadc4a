# costmodel — the two commands of the README quick start:
#   make app    set everything up, then start the Streamlit app
#   make test   set everything up, then run the whole test suite (what CI runs)
#   make gpu-validate   the GPU measurement kit (docs/GPU_KIT.md), no install step
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PORT ?= 8501
# PyTorch's CPU wheel is pinned where torch is absent: an unpinned `torch` pulls a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: app test install install-app browser lint bench clean gpu-validate

$(PY):
	python3 -m venv $(VENV)

# Stamp files re-run the install when setup.cfg changes.
$(VENV)/.installed-%: setup.cfg pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[$*]"
	touch $@

install-app: $(VENV)/.installed-app,torch
install: $(VENV)/.installed-app,torch,dev

# Debian's Chromium for the browser tests (a Playwright browser download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

app: install-app
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

test: install browser
	$(PY) -m ruff check costmodel tests app.py
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check costmodel tests app.py

bench: install
	$(VENV)/bin/costmodel bench analyze
	$(VENV)/bin/costmodel bench startup
	$(VENV)/bin/costmodel bench sweep

# The GPU kit runs from a plain checkout on a Python that has torch, sympy, numpy, pandas,
# matplotlib and tabulate (docs/GPU_KIT.md): calibrate, measure, validate, report in GPU_OUT.
KIT_PYTHON ?= python3
GPU_OUT ?= gpu-run
GPU_BUDGET ?= 300
gpu-validate:
	PYTHONPATH=. $(KIT_PYTHON) -m costmodel validate --kit --device cuda --out $(GPU_OUT) \
		--budget $(GPU_BUDGET)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
