# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: run run-server-pg test lint unit bench bench-quick clean system-deps package package-test

$(STAMP): pyproject.toml
	@./scripts/ensure-system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

system-deps:
	./scripts/ensure-system-deps

run: $(STAMP)
	$(BIN)/lea $(ARGS)

# A temporary PostgreSQL 15 and `lea-backend serve --store postgresql://...` on it (demo fleet, no
# authentication, loopback); Ctrl+C stops both. ARGS go to `serve` (docs/server.md).
run-server-pg: $(STAMP)
	$(BIN)/python scripts/run-server-pg $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(ARGS)

test: lint unit

# Every benchmark in bench/ (each a standalone script; docs/performance.md; bench/_*.py are their helpers);
# bench-quick: smaller runs.
BENCHES := $(filter-out bench/_%.py,$(sort $(wildcard bench/*.py)))

bench: $(STAMP)
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b; done

bench-quick: $(STAMP)
	@set -e; for b in $(BENCHES); do echo "== $$b --quick"; $(BIN)/python $$b --quick; done

# Installers (packaging/): the Linux bundle, .deb and .tar.gz in dist/, smoke-tested;
# package-test builds them in a temporary directory and tests the unpacked .deb (slow, a few minutes).
package: $(STAMP)
	packaging/build-linux

package-test: $(STAMP)
	LEA_PACKAGE_TEST=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -s tests/packaging $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
