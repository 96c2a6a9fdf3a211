# Two commands set everything up on a fresh machine:
#   make repro   install, then run the whole pipeline (`dvc repro`)
#   make test    install, then lint, check formatting and run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
# Stages run `python -m stages.X`: put the virtual environment first so that is its Python.
export PATH := $(BIN):$(PATH)

.PHONY: install repro test lint format report

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

repro: install
	dvc repro

lint: install
	ruff check .
	ruff format --check .

test: lint
	pytest

format: install
	ruff check --fix .
	ruff format .
