# The README's two commands: `make demo` runs the main job, `make test` the whole suite.
# Both create their own virtual environment (.venv) and install perpsim into it, so a fresh
# machine needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check sim api strategy perpsim fixtures tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/perpsim demo

lint: $(STAMP)
	$(BIN)/ruff check sim api strategy perpsim fixtures tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/perpsim bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
