# The two commands of the README: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test chaos bench lint typecheck clean

$(STAMP): pyproject.toml emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,redis,dev]' -e ./emulator
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cloudq demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not chaos" -q

chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos -q tests/chaos

bench: $(STAMP)
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV)
