PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench mutate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	sh examples/demo.sh $(BIN)/distributor

bench: $(STAMP)
	$(BIN)/python bench/email_throughput.py --recipients 20000 --runs 3 --memory-recipients 100000
	$(BIN)/python bench/lift_latency.py

# Mutation testing of the delivery core ([tool.mutmut] in pyproject.toml); SQLite only, not part of CI.
mutate: $(STAMP)
	rm -rf mutants
	env -u DISTRIBUTOR_TEST_DATABASE_URL $(BIN)/mutmut run --max-children $${MUTATE_JOBS:-2}
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) var outbox build *.egg-info mutants
