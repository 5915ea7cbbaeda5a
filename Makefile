# Every target that runs code first creates or reuses the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= cpu
RESULTS ?= results
DATA_DIR ?= data

.PHONY: help install test table3 data report clean

help:  ## list the targets
	@grep -E '^[a-z0-9]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) (smoke | cpu | paper), RESULTS=$(RESULTS), DATA_DIR=$(DATA_DIR)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create or update the virtual environment (.venv)

test: $(STAMP)  ## run the test suite (wandb disabled)
	WANDB_MODE=disabled $(PY) -m pytest -q

table3: $(STAMP)  ## run Table 3 with PRESET (default cpu) and write results/table3.{md,csv}
	$(PY) -m benchmark run table3 --preset $(PRESET) --results $(RESULTS) --data-dir $(DATA_DIR)

data: $(STAMP)  ## show which datasets are present under DATA_DIR and what is missing
	$(PY) -m benchmark data --data-dir $(DATA_DIR)

report: $(STAMP)  ## rewrite results/table3.{md,csv} from the stored cells, running nothing
	$(PY) -m benchmark report table3 --preset $(PRESET) --results $(RESULTS)

clean:  ## remove the virtual environment and the run store (results/runs); keeps the written tables
	rm -rf $(VENV) $(RESULTS)/runs
