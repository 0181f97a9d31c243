# pyipsec — the two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint unit demo bench deps clean

# Set up everything (system packages, .venv) and run every check.
test: $(STAMP)
	$(MAKE) lint
	$(BIN)/pytest

LINTED := $(wildcard src tests bench fuzz)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict src

# Unit tests only (no root, no namespaces): quick feedback while coding.
unit: $(STAMP)
	$(BIN)/pytest -m "not root"

demo: $(STAMP)
	$(BIN)/python -m pyipsec.cli.demo

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

deps:
	scripts/install-system-deps.sh

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis src/*.egg-info
