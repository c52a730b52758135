# The two commands: `make demo` and `make test`. Each sets itself up from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean venv host-deps-demo host-deps-test screenshots docs

demo: host-deps-demo $(STAMP)
	$(VENV)/bin/autotua-demo $(DEMO_ARGS)

test: host-deps-test $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# refresh the web UI's pictures in docs/screenshots/ (the README shows them)
screenshots: host-deps-test $(STAMP)
	AUTOTUA_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/web/test_screenshots.py

# rewrite the generated parts of docs/security.md and docs/reliability.md from the tests that measure
# them (a plain `make test` only checks them, and never rewrites a tracked file)
docs: host-deps-test $(STAMP)
	AUTOTUA_WRITE_DOCS=1 $(PY) -m pytest -q tests/hardening tests/reliability

venv: $(STAMP)

host-deps-demo:
	@bin/host-deps demo

host-deps-test:
	@bin/host-deps test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "!!! AutotuA needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
