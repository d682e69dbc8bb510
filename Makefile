# The two commands: `make demo` and `make test`. Both set up everything on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The learning worker (torch + Flower) in its own venv: Flower pins web libraries below
# oncofed's. torch is pinned exactly (the CPU wheel); see learning/pyproject.toml.
LVENV := .venv-learning
LSTAMP := $(LVENV)/.installed

.PHONY: demo test lint typecheck bench clean install learning

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $@

$(LSTAMP): learning/pyproject.toml
	$(PY) -m venv $(LVENV)
	$(LVENV)/bin/python -m pip install --quiet --upgrade pip
	$(LVENV)/bin/python -m pip install --quiet -e './learning[test]'
	touch $@

learning: $(LSTAMP)

install: $(STAMP) $(LSTAMP)

demo: $(STAMP) $(LSTAMP)
	$(BIN)/oncofed demo

test: $(TEST_STAMP) $(LSTAMP)
	$(BIN)/ruff check src tests bench learning
	$(BIN)/ruff format --check src tests bench learning
	$(BIN)/mypy
	$(LVENV)/bin/python -m pytest -q learning/tests
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/channel.py

clean:
	rm -rf $(VENV) $(LVENV) build dist .pytest_cache .mypy_cache .ruff_cache
