PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest soak bench-core bench-setup bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/backtest-kit demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

test: lint typecheck pytest

soak: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench-core: $(STAMP)
	$(BIN)/python benchmarks/backtest_speed.py

# peers (backtesting.py, backtrader, vectorbt, nautilus_trader) in their own venvs under
# benchmarks/.venv-peers/, never in $(VENV); one that does not install is skipped by bench
bench-setup: $(STAMP)
	$(BIN)/python benchmarks/bench.py --setup

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
