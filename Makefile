# The two commands: `make demo` and `make test`. Each creates .venv and installs cnnlab into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cnnlab-installed
# On machines that keep PyTorch wheels on disk (a pip cap in /etc/xdg/pip), take exactly those;
# elsewhere pip resolves the ranges declared in pyproject.toml.
TORCH_PIN := $(if $(wildcard /etc/xdg/pip),torch==2.14.1 torchvision==0.29.1,)

.PHONY: demo test lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(if $(TORCH_PIN),$(PY) -m pip install -q $(TORCH_PIN))
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cnnlab demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
