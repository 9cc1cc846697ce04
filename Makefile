# Everything a fresh clone needs is installed from here.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test slow faults clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tripwire demo

PACKAGES := tripwire monitor interlock sensors models sim scada campaign bench

test: $(STAMP)
	$(BIN)/ruff check --quiet --select F $(PACKAGES) tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The fault-injection campaign at full counts (about an hour on a 2-core machine), then the
# decoders' fuzzing at 10^5 inputs each. The table is printed; the rows land in faults.json.
faults: $(STAMP)
	status=0; \
	$(BIN)/tripwire faults --json faults.json || status=1; \
	TRIPWIRE_FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest -q tests/fuzz || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) build *.egg-info
