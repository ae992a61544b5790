# attnmt — `make test` and `make demo` each create .venv when missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install test test-portable lint browser docs docs-serve demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned (see constraints.txt), then the package and its dev extras.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet torch==2.13.0
	PIP_CONSTRAINT=constraints.txt $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# ruff, and import-linter's layers contract (pyproject.toml): an upward import fails here.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# One pytest-xdist worker per core (each with its share of torch's threads, tests/conftest.py);
# a file's tests stay on one worker, so its module fixtures train once.
PYTEST  := $(BIN)/pytest -q -n auto --dist loadfile

# The whole suite on this CPU's own kernels, then the tests whose outcome depends on
# floating-point kernels (marker `numerics`) once more under another CPU's code paths.
test: lint browser
	$(PYTEST)
	$(MAKE) --no-print-directory test-portable PORTABLE=generic

# The `numerics` tests under kernel settings other than this CPU's (tests/kernel_settings.py):
# other summation orders and code paths, as another x86-64 CPU would take.
PORTABLE ?= avx-compat generic
test-portable: $(STAMP)
	@for s in $(PORTABLE); do \
	  echo "numerics tests under '$$s': $$($(BIN)/python tests/kernel_settings.py $$s)"; \
	  env $$($(BIN)/python tests/kernel_settings.py $$s) $(PYTEST) -m numerics || exit 1; \
	done

# Debian's Chromium for the real-browser test of the web page; without it that one
# test is skipped and says so.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null) || echo "note: could not install chromium; the browser test is skipped"; \
	  else \
	    echo "note: /usr/bin/chromium is missing (apt-get install chromium); the browser test is skipped"; \
	  fi; \
	fi

# The documentation site, built offline into site/ (tables regenerated from benchmarks/results,
# reference pages generated from the code;
# --strict: a broken link or reference fails). The suite builds it too (tests/test_docs.py).
docs: $(STAMP)
	$(BIN)/python docs/scripts/tables.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

demo: $(STAMP)
	$(BIN)/attnmt demo --out runs/demo

clean:
	rm -rf runs site .pytest_cache
