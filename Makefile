PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install bench mutate clean

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
	status=0; \
	$(BIN)/python bench/email_throughput.py --recipients 20000 --runs 3 --memory-recipients 10000,1000000 \
		--memory-timeout 2400 || status=1; \
	$(BIN)/python bench/lift_latency.py --statements 100 --spacing 0.3 --concurrent-send 60000 || status=1; \
	$(BIN)/python bench/scale_out.py --recipients 20000 --workers 1,2,3 || status=1; \
	$(BIN)/python bench/dashboard.py || status=1; \
	$(BIN)/python bench/newsroom.py --clients 50 --duration 20 || status=1; \
	$(BIN)/python bench/email_throughput.py --recipients 2000 --runs 1 --attachment-bytes 1000000 || status=1; \
	$(BIN)/python bench/lift_latency.py --media 4 || status=1; \
	$(BIN)/python bench/portal.py --journalists 1000 --rate 200 --duration 20 || status=1; \
	exit $$status

# Mutation testing of the delivery core ([tool.mutmut] in pyproject.toml); SQLite only, not part of CI.
mutate: $(STAMP)
	rm -rf mutants
	env -u DISTRIBUTOR_TEST_DATABASE_URL $(BIN)/mutmut run --max-children $${MUTATE_JOBS:-2}
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) var outbox build *.egg-info mutants
