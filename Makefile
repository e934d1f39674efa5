PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: $(STAMP)
	sh examples/demo.sh $(BIN)/distributor

bench: $(STAMP)
	$(BIN)/python bench/email_throughput.py --recipients 20000 --runs 3 --memory-recipients 100000
	$(BIN)/python bench/lift_latency.py

clean:
	rm -rf $(VENV) var outbox build *.egg-info
