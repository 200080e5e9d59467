# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

NODE_DEPS := tests/e2e/node/node_modules/.package-lock.json

$(NODE_DEPS): tests/e2e/node/package.json tests/e2e/node/package-lock.json
	npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error

install: $(STAMP)

## Run the platform on its embedded defaults (SQLite and media in ./var, port 8080).
run: install
	$(BIN)/stagecast db upgrade
	$(BIN)/stagecast serve

## Lint, type-check and run the whole suite (PostgreSQL/Redis when STAGECAST_TEST_* are set).
test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: install
	$(BIN)/mypy src

pytest: install $(NODE_DEPS)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
