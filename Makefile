# The two set-up commands of the README, and the checks tox runs too.
#   make run   -> a running box office on http://127.0.0.1:3000 (API + persister)
#   make test  -> the whole test suite, ruff and mypy --strict
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TOOLS  := .tools

.PHONY: run test pytest lint type format soak bench clean chromium

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev,embedded]'
	touch $@

# newman (the original's Postman runner) for the compatibility tests, from the npm registry.
$(TOOLS)/node_modules/.bin/newman:
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) newman@6

# Debian's chromium for the browser tests (Playwright drives it; no browser is downloaded).
# As root with apt-get (CI, containers) it is installed when missing; elsewhere the browser
# tests skip with a reason unless CI is set.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); } \
		|| echo "chromium is not installed: the browser tests will skip"

run: $(BIN)/.installed
	$(BIN)/boxoffice run

test: $(BIN)/.installed $(TOOLS)/node_modules/.bin/newman chromium
	$(BIN)/pytest
	$(BIN)/ruff check .
	$(BIN)/mypy engine api persistence

pytest: $(BIN)/.installed
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: $(BIN)/.installed
	$(BIN)/mypy engine api persistence

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Long soak and load runs, excluded from `make test`.
soak: $(BIN)/.installed
	$(BIN)/pytest -m slow

# Every DESIGN §6 figure in one run (minutes): table, docs/PERFORMANCE.md and its chart.
# Uses wrk when installed (apt-get install -y wrk), else a multi-process Python client.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[loadtest]'
	$(BIN)/python -m loadtest.bench

clean:
	rm -rf $(VENV) $(TOOLS) .tox .pytest_cache .mypy_cache .ruff_cache
