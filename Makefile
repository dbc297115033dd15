# The README's two commands: `make demo` runs the main job, `make test` the whole suite.
# Both create their own virtual environment (.venv) and install perpsim into it, so a fresh
# machine needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The dashboard's browser test drives a system Chromium, never a downloaded browser
# (tests/test_ui_browser.py): installed here from Debian when missing and we may (root with
# apt-get); otherwise this says what to install, and that test fails saying the same.
chromium:
	@if command -v chromium >/dev/null 2>&1 || [ -x "$${PERPSIM_CHROMIUM:-/usr/bin/chromium}" ]; then \
	    :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test: installing Debian's chromium for the dashboard's browser test"; \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
	        chromium >/dev/null; \
	else \
	    echo "make test: the dashboard's browser test needs Chromium and will fail without it:"; \
	    echo "    sudo apt-get install chromium   (or PERPSIM_CHROMIUM=/path/to/chromium make test)"; \
	fi

# Property tests draw a share of their examples here; a deep run draws them all
# (tests/hypothesis_budget.py): $(BIN)/python -m pytest --hypothesis-profile=thorough
test: $(STAMP) chromium
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
