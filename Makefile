# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest install clean web chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

NODE_DEPS := tests/e2e/node/node_modules/.package-lock.json

$(NODE_DEPS): tests/e2e/node/package.json tests/e2e/node/package-lock.json
	npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error

# The web app: npm ci when the lock file changes, esbuild when a source changes.
WEB := src/stagecast/web/frontend
WEB_DEPS := $(WEB)/node_modules/.package-lock.json
WEB_BUILD := src/stagecast/web/static/dist/manifest.json
WEB_SOURCES := $(WEB)/build.mjs $(WEB)/package.json $(shell find $(WEB)/src -type f)

$(WEB_DEPS): $(WEB)/package.json $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SOURCES)
	node $(WEB)/build.mjs

## Build the web app into src/stagecast/web/static/dist (quick when nothing changed).
web: $(WEB_BUILD)

## Debian's Chromium for the browser tests (tests/web), installed when missing; the emoji
## font draws chat emotes in the tests' screenshots.
CHROMIUM_PACKAGES := chromium fonts-noto-color-emoji
chromium:
	@test -x /usr/bin/chromium -a -d /usr/share/fonts/truetype/noto || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $(CHROMIUM_PACKAGES) \
	    || { apt-get update && apt-get install -y --no-install-recommends $(CHROMIUM_PACKAGES); }; }

install: $(STAMP)

## Run the platform on its embedded defaults (SQLite and media in ./var, port 8080).
run: install web
	$(BIN)/stagecast db upgrade
	$(BIN)/stagecast serve

## Lint, type-check and run the whole suite (PostgreSQL/Redis when STAGECAST_TEST_* are set).
test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: install
	$(BIN)/mypy src

pytest: install $(NODE_DEPS) web chromium
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
