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

# Fashion-MNIST: found on disk, else Debian's dataset-fashion-mnist (as root), else torchvision's download.
demo: $(STAMP)
	$(VENV)/bin/cnnlab data fetch fashion-mnist
	$(VENV)/bin/cnnlab demo

# The real-data tests need Fashion-MNIST; without it they are skipped, the others still run.
test: $(STAMP)
	$(VENV)/bin/cnnlab data fetch fashion-mnist --optional
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
