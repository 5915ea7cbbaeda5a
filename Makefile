# Every target that runs code first creates or reuses the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= cpu
RESULTS ?= results
DATA_DIR ?= data
TABLE ?= table3
SLURM_DIR ?= /tmp/noise2same-slurm
# Cells side by side, one per core, each with one thread: on a small CPU that finishes more cells than
# one process using every core (on a machine with a GPU, one cell at a time).
WORKERS ?= $(if $(shell command -v nvidia-smi),1,$(shell nproc))
# SEEDS=3 runs seeds 0,1,2 of every cell (a list such as SEEDS=0,4 is passed as it is).
SEED_LIST = $(if $(SEEDS),--seeds $(or $(shell seq -s, 0 $$(($(SEEDS) - 1)) 2>/dev/null),$(SEEDS)))
# Debian's chromium (headless: the results page's test and picture), installed when missing and run as root.
NEED_CHROMIUM = command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
	|| { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	|| { echo "error: headless Chromium is needed: apt-get install chromium (as root)" >&2; exit 1; }
RUN = $(PY) -m benchmark run --preset $(PRESET) --results $(RESULTS) --data-dir $(DATA_DIR) --workers $(WORKERS) $(if $(METHODS),--methods $(METHODS)) $(SEED_LIST)

.PHONY: help install test test-slurm test-browser screenshot table3 table1 table2 figure3 figure4 budget data report rescore bench bench-volume clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) (smoke | cpu | paper), RESULTS=$(RESULTS), DATA_DIR=$(DATA_DIR), TABLE=$(TABLE),"
	@echo "             METHODS (rows to run; +NAME adds a row, e.g. METHODS=+neighbor2neighbor),"
	@echo "             SEEDS (seeds per cell: SEEDS=3 runs seeds 0,1,2; default: the preset's),"
	@echo "             WORKERS (cells side by side, one thread each; default: $(WORKERS), the cores here)"

$(STAMP): pyproject.toml examples/plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet -e examples/plugin  # the example method plugin: the tests cover it too
	touch $(STAMP)

install: $(STAMP)  ## create or update the virtual environment (.venv)

test: $(STAMP)  ## lint (ruff), then run the test suite (wandb disabled)
	$(PY) -m ruff check .
	WANDB_MODE=disabled $(PY) -m pytest -q -m "not slurm and not browser"

test-browser: $(STAMP)  ## install Debian's chromium if missing (root), check a smoke results page in it headless
	@$(NEED_CHROMIUM)
	WANDB_MODE=disabled $(PY) -m pytest -q -m browser

test-slurm: $(STAMP)  ## bring up a one-node SLURM cluster (root), run the slurm tests against it, bring it down
	tests/slurm/cluster.sh up $(SLURM_DIR) || { tests/slurm/cluster.sh down $(SLURM_DIR); exit 1; }; \
	export SLURM_CONF=$(SLURM_DIR)/etc/slurm.conf; \
	WANDB_MODE=disabled $(PY) -m pytest -q -m slurm tests/test_slurm.py; status=$$?; \
	sacct -a -X -o JobID,JobName%16,State,Start,Elapsed,ExitCode; \
	tests/slurm/cluster.sh down $(SLURM_DIR); exit $$status

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

budget: $(STAMP)  ## test PSNR against training steps and cost, every trained method (~1h45m on 2 CPU cores): results/budget.{png,csv}
	$(RUN) budget

data: $(STAMP)  ## show which datasets are present under DATA_DIR and what is missing
	$(PY) -m benchmark data --data-dir $(DATA_DIR)

report: $(STAMP)  ## rewrite TABLE's (default table3) report from the stored cells, running nothing
	$(PY) -m benchmark report $(TABLE) --preset $(PRESET) --results $(RESULTS) --data-dir $(DATA_DIR) $(SEED_LIST)

screenshot: $(STAMP)  ## picture of RESULTS/index.html (every report writes it) for the README: RESULTS/index.png
	@$(NEED_CHROMIUM)
	$(PY) -m benchmark.html_report $(RESULTS)/index.html $(RESULTS)/index.png

rescore: $(STAMP)  ## add SSIM to TABLE's stored cells that lack it, without training (then `make report`)
	$(PY) -m benchmark rescore $(TABLE) --preset $(PRESET) --results $(RESULTS) --data-dir $(DATA_DIR) $(SEED_LIST)

bench: $(STAMP)  ## speed and memory of every method, also at the paper's widths (~1 h on 2 CPU cores): results/bench.{md,json}
	$(PY) -m benchmark bench --results $(RESULTS)

bench-volume: $(STAMP)  ## a volume through `denoise` with the paper's 3-D network: results/bench_volume.{md,json}
	$(PY) -m benchmark.bench_volume --results $(RESULTS) $(BENCH_VOLUME_ARGS)

clean:  ## remove the virtual environment and the run store (results/runs); keeps the written tables
	rm -rf $(VENV) $(RESULTS)/runs
