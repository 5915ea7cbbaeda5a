# Every target that runs code first creates or reuses the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= cpu
RESULTS ?= results
DATA_DIR ?= data
TABLE ?= table3
RUN = $(PY) -m benchmark run --preset $(PRESET) --results $(RESULTS) --data-dir $(DATA_DIR) $(if $(METHODS),--methods $(METHODS))

.PHONY: help install test table3 table1 table2 figure3 figure4 data report bench clean

help:  ## list the targets
	@grep -E '^[a-z0-9]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) (smoke | cpu | paper), RESULTS=$(RESULTS), DATA_DIR=$(DATA_DIR), TABLE=$(TABLE),"
	@echo "             METHODS (rows to run; +NAME adds a row, e.g. METHODS=+neighbor2neighbor)"

$(STAMP): pyproject.toml examples/plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet -e examples/plugin  # the example method plugin: the tests cover it too
	touch $(STAMP)

install: $(STAMP)  ## create or update the virtual environment (.venv)

test: $(STAMP)  ## run the test suite (wandb disabled)
	WANDB_MODE=disabled $(PY) -m pytest -q

table3: $(STAMP)  ## Table 3, PSNR of every method (PRESET, default cpu): results/table3.{md,csv}
	$(RUN) table3

table1: $(STAMP)  ## Table 1, D(f) and PSNR by replacement strategy: results/table1.{md,csv}
	$(RUN) table1

table2: $(STAMP)  ## Table 2, D(f) and PSNR across datasets: results/table2.{md,csv}
	$(RUN) table2

figure3: $(STAMP)  ## Figure 3, test PSNR against training cost: results/figure3.{png,csv}
	$(RUN) figure3

figure4: $(STAMP)  ## Figure 4, PSNR against sigma_loss per noise level: results/figure4.{png,csv}
	$(RUN) figure4

data: $(STAMP)  ## show which datasets are present under DATA_DIR and what is missing
	$(PY) -m benchmark data --data-dir $(DATA_DIR)

report: $(STAMP)  ## rewrite TABLE's (default table3) report from the stored cells, running nothing
	$(PY) -m benchmark report $(TABLE) --preset $(PRESET) --results $(RESULTS)

bench: $(STAMP)  ## measure training/inference speed and memory of every method: results/bench.{md,json}
	$(PY) -m benchmark bench --results $(RESULTS)

clean:  ## remove the virtual environment and the run store (results/runs); keeps the written tables
	rm -rf $(VENV) $(RESULTS)/runs
