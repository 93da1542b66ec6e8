# AE Render Manager: developer entry points. `make help` lists them.
#
# Needs Python 3.11+, Node 20 (npm) and, for the PostgreSQL test pass, the
# PostgreSQL server binaries. Everything else is installed into .venv and
# node_modules by `make setup`.

.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DATA_DIR ?= var
PORT ?= 8000
HOST ?= 127.0.0.1
NODE ?= $(shell hostname)
PGTEST_DIR ?= $(DATA_DIR)/pgtest
ARTIFACTS := artifacts
PYTEST_ARGS ?=
CI ?=

PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

# migrate and install_simulator need no secrets: DEBUG=true lets them run
# before any .env exists (a real .env still supplies everything else).
SETUP_ENV := DEBUG=true
# Tests ignore .env (it may hold the demo's short timings) and a DATABASE_URL
# from the shell: the first pass is SQLite, the second gets its URL from pgtest.
TEST_ENV := env -u DATABASE_URL ENV_FILE=/dev/null DEBUG=true
# pytest exits 5 when it collected no tests: say so, but do not fail the run
# for it (an empty suite is reported by pytest's own closing line).
PYTEST_RC := rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected"; rc=0; fi; exit $$rc

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
HAVE_PG := $(wildcard /usr/lib/postgresql/*/bin/pg_ctl $(PG_BIN)/pg_ctl) $(shell command -v pg_ctl 2>/dev/null)
HAVE_CHROMIUM := $(wildcard /usr/bin/chromium)
APT_MISSING := $(if $(HAVE_PG),,postgresql) $(if $(HAVE_CHROMIUM),,chromium)
# Benchmark scripts are the bench/*.py with a __main__ block (not helpers like harness.py).
BENCHES := $(shell grep -l '__main__' bench/*.py 2>/dev/null)
BENCH_ARGS ?=

.PHONY: help setup run test test-setup test-deps test-sqlite test-postgres lint bench clean distclean

help:
	@echo "make run        set everything up and start the web server + one render worker (demo)"
	@echo "make test       ruff, then pytest on SQLite and again on a throwaway PostgreSQL"
	@echo "make setup      .venv, Python packages, the pinned nexrender CLI, migrations, simulator"
	@echo "make lint       ruff check"
	@echo "make bench      run every benchmark in bench/ (BENCH_ARGS=\"--db postgres\" passes options)"
	@echo "make clean      remove test artifacts, caches and the test PostgreSQL cluster"
	@echo "make distclean  clean, and remove .venv, node_modules and $(DATA_DIR)/ (the local database!)"

# --- Setup ------------------------------------------------------------------

setup: $(PIP_STAMP) $(NPM_STAMP)
	$(SETUP_ENV) $(PY) manage.py migrate --noinput
	$(SETUP_ENV) $(PY) manage.py install_simulator $(DATA_DIR)/aerender-simulator

$(PIP_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11 or python3 on PATH)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(NPM_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	touch $@

# --- The demo ---------------------------------------------------------------

# Written once; an existing .env (your own settings) is left alone.
.env:
	@echo "Writing demo settings to .env (all settings and real defaults: deploy/.env.example)"
	@printf '%s\n' \
	  '# Local demo settings, written by `make run` because no .env existed.' \
	  '# Every setting, with its real default, is listed in deploy/.env.example.' \
	  'DEBUG=true' \
	  'ALLOW_PASSWORD_LOGIN=true' \
	  '# Validate submitted files in about a second (defaults: 30, 3 and 3 seconds).' \
	  'MIN_FILE_AGE_SECONDS=0' \
	  'STABILITY_CHECK_SECONDS=0.5' \
	  'VALIDATION_INTERVAL_SECONDS=0.5' > $@

# Ctrl-C stops daphne; the trap then stops the worker (which puts a running
# render back in the queue) and waits for it.
run: .env setup
	PORT=$(PORT) $(PY) manage.py demo_setup
	@echo "Starting the web server on http://localhost:$(PORT) and render worker $(NODE); Ctrl-C stops both."
	@trap 'kill -0 $$worker 2>/dev/null && kill $$worker; wait $$worker' EXIT INT TERM; \
	PORT=$(PORT) $(PY) manage.py render_worker --node "$(NODE)" & worker=$$!; \
	PORT=$(PORT) $(BIN)/daphne -b $(HOST) -p $(PORT) rendermanager.asgi:application

# --- Tests ------------------------------------------------------------------

# The two passes run at the same time (they share no files: SQLite's test
# database is a file under $(DATA_DIR), PostgreSQL's a throwaway server, and
# every test server or worker takes a free port), each one's output printed
# when it ends: on 2 cores 900-1000 s in all instead of about 1450 s one after the
# other. TEST_PASSES=serial runs them one after the other, output as it comes.
TEST_PASSES ?= parallel

test: lint test-setup
ifeq ($(TEST_PASSES),serial)
	$(MAKE) --no-print-directory test-sqlite test-postgres
else
	@echo "== both pytest passes (SQLite, PostgreSQL) at once; each one's output follows when it ends"
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres
endif

test-setup: setup test-deps

lint: $(PIP_STAMP)
	$(BIN)/ruff check .

test-sqlite: setup test-deps
	@echo "== pytest on SQLite =="
	@mkdir -p $(ARTIFACTS)
	$(TEST_ENV) $(PY) -m pytest --junitxml=$(ARTIFACTS)/junit-sqlite.xml $(PYTEST_ARGS); $(PYTEST_RC)

# pgtest starts a throwaway server, runs pytest with its DATABASE_URL and
# stops the server again, also when pytest fails. Without server binaries the
# pass is skipped with a hint, except under CI=true.
test-postgres: setup test-deps
	@echo "== pytest on PostgreSQL =="
	@mkdir -p $(ARTIFACTS)
	$(TEST_ENV) TESTS_DATABASE_ONLY=true $(PY) tools/pgtest.py run --optional $(PGTEST_DIR) -- \
	  $(PY) -m pytest --junitxml=$(ARTIFACTS)/junit-postgres.xml $(PYTEST_ARGS); $(PYTEST_RC)

# Under CI=true nothing the tests need may be missing: install it with apt.
# Elsewhere, say what is missing; those tests skip with the same hint.
test-deps:
ifeq ($(CI),true)
ifneq ($(strip $(APT_MISSING)),)
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(APT_MISSING)
endif
	test -x /usr/bin/chromium
else
	@$(if $(HAVE_PG),true,echo "note: no PostgreSQL server binaries: the PostgreSQL pass will be skipped (apt-get install postgresql, or brew install postgresql@15)")
	@$(if $(HAVE_CHROMIUM),true,echo "note: no /usr/bin/chromium: browser tests will be skipped (apt-get install chromium)")
endif

# --- Benchmarks and housekeeping -------------------------------------------

bench: setup
	@$(if $(BENCHES),true,echo "No benchmarks in bench/ yet.")
	@for bench in $(BENCHES); do echo "== $$bench"; $(TEST_ENV) $(PY) $$bench $(BENCH_ARGS) || exit 1; done

clean:
	-test -f tools/pgtest.py && $(PYTHON) tools/pgtest.py destroy $(PGTEST_DIR)
	rm -rf $(ARTIFACTS) .pytest_cache .ruff_cache $(DATA_DIR)/test_*
	find . -name __pycache__ -not -path './.venv/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules $(DATA_DIR) *.egg-info
