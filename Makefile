# AccessHive developer entry points. `make run` needs no servers; `make test` is the one test command.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint bench chaos clean venv coverage mutation mutation-verify

# The venv is made once with the machine's python3; the install re-runs only when
# pyproject.toml is newer than the stamp (or the last install failed).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[dev]"
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/dev.py --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SECRET_KEY=x $(BIN)/mypy .

# pytest's exit code 5 (no tests collected) is a failure here, like any other non-zero code.
# Then the chaos suite's short form (20 identities a fault, PostgreSQL stopped 12 s), whatever
# pytest's outcome, so one run reports both; either failing fails make test, saying which.
CHAOS_SHORT := CHAOS_IDENTITIES=20 CHAOS_PG_STOP_SECONDS=12
test: lint
	@rc=0; bash scripts/services.sh $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; fi; \
	chaos=0; $(MAKE) --no-print-directory chaos $(CHAOS_SHORT) || chaos=$$?; \
	if [ $$rc -ne 0 ]; then echo "make test: pytest FAILED (exit $$rc)" >&2; fi; \
	if [ $$chaos -ne 0 ]; then \
		echo "make test: the chaos suite's short form FAILED (exit $$chaos); figures in var/chaos/report.jsonl" >&2; \
	fi; \
	[ $$rc -eq 0 ] && [ $$chaos -eq 0 ]

# Faults (kill -9, FLUSHALL, PostgreSQL restarts and a stop) against a PostgreSQL and a Redis
# of its own under var/chaos, started here and stopped after; figures to var/chaos/report.jsonl.
# The full form here; make test runs the short form ($(CHAOS_SHORT)).
CHAOS_IDENTITIES ?= 200
CHAOS_PG_STOP_SECONDS ?= 30
CHAOS_DIR := $(CURDIR)/var/chaos
chaos: $(STAMP)
	@mkdir -p $(CHAOS_DIR); rc=0; \
	env -u TEST_DATABASE_URL -u TEST_REDIS_URL ACCESSHIVE_PRIVATE_SERVICES=1 \
		ACCESSHIVE_SERVICES_DIR=$(CHAOS_DIR) ACCESSHIVE_CHAOS_PG_DIR=$(CHAOS_DIR)/postgres \
		ACCESSHIVE_CHAOS_REPORT=$${ACCESSHIVE_CHAOS_REPORT:-$(CHAOS_DIR)/report.jsonl} \
		ACCESSHIVE_CHAOS_IDENTITIES=$(CHAOS_IDENTITIES) \
		ACCESSHIVE_CHAOS_PG_STOP_SECONDS=$(CHAOS_PG_STOP_SECONDS) \
		bash scripts/services.sh $(BIN)/pytest tests/chaos -p no:cacheprovider $(CHAOS_PYTEST_ARGS) || rc=$$?; \
	ACCESSHIVE_SERVICES_DIR=$(CHAOS_DIR) bash scripts/services.sh stop; \
	if [ $$rc -eq 5 ]; then echo "make chaos: pytest collected no tests: failing" >&2; fi; \
	exit $$rc

# The whole suite under coverage, with every Python process it starts (workers, their pool
# processes, beat, subprocess commands) measured and combined: see [tool.coverage] in
# pyproject.toml. The report lists files below 100 %; var/coverage/html has the details.
coverage: $(STAMP)
	rm -rf var/coverage && mkdir -p var/coverage
	@rc=0; bash scripts/services.sh $(BIN)/coverage run -m pytest $(PYTEST_ARGS) || rc=$$?; \
	$(BIN)/coverage combine -q && $(BIN)/coverage html -q -d var/coverage/html && \
	$(BIN)/coverage report; exit $$rc

# Mutation testing with mutmut over the modules in [tool.mutmut] (pyproject.toml); slow, so
# not part of `make test`. MUTATE picks modules by mutant name, e.g. MUTATE="accounts* vault*";
# results are kept in mutants/ and a re-run only tries what changed. One child at a time: the
# mutants share one test database (--reuse-db).
MUTATE ?=
# set -f: MUTATE's globs are for mutmut, not the shell (unquoted, "vault*" became the directory
# vault, and mutmut found no mutant of that name).
mutation: $(STAMP)
	set -f; bash scripts/services.sh $(BIN)/mutmut run --max-children 1 $(MUTATE)
	$(BIN)/python scripts/mutation_scores.py

# Re-checks every kill of the last `make mutation` (or those MUTATE names) in a fresh pytest,
# so a test that failed in mutmut's worker for another reason is not counted as a kill.
mutation-verify: $(STAMP)
	set -f; bash scripts/services.sh $(BIN)/python scripts/mutation_verify.py $(MUTATE)

bench: $(STAMP)
	@for f in bench/bench_*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; $(BIN)/python $$f || exit 1; \
	done

# Leaves .venv and var/'s data (local database, secret key, admin password) alone.
clean:
	-bash scripts/services.sh stop
	-ACCESSHIVE_SERVICES_DIR=$(CHAOS_DIR) bash scripts/services.sh stop
	rm -rf .pytest_cache .mypy_cache .ruff_cache var/services var/chaos var/staticfiles
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
