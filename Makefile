# Set-up and everyday commands. `make demo` on a fresh machine creates .venv, installs everything pinned by
# constraints.txt, and runs the paper's synthetic experiment; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create the virtual environment and install sobirl with its dev tools

demo: $(STAMP)  ## the paper's synthetic M-SoBiRL run (S=10, A=5, n=100, K=3000) into runs/
	$(BIN)/sobirl synthetic --output-dir runs

test: $(STAMP)  ## the test suite (slow tests excluded; each has a fast twin)
	$(BIN)/python -m pytest -m "not slow" -n 2

test-slow: $(STAMP)  ## only the slow tests
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## the exact-engine benchmark (minutes); prints the table in docs/benchmarks.md
	$(BIN)/python benchmarks/hypergradient.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
