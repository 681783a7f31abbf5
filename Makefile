# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FACTOR_PIPELINE_HOME ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(FACTOR_PIPELINE_HOME)/dagster
# The demo backfill: one year of monthly factors and their evaluation on the embedded market.
DEMO_FROM ?= 2024-01
DEMO_TO ?= 2024-12

.PHONY: install run test test-fast ui bench bench-scale bench-full validate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned. Which build this is depends on the index pip reads: a CPU wheel where the index
	# holds one (a local wheel directory, or TORCH_INDEX=https://download.pytorch.org/whl/cpu); from PyPI on
	# Linux, the CUDA build (several GB), which also runs on a CPU.
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[test,scale]'
	touch $@

install: $(BIN)/.installed

# The instance settings: PostgreSQL storage when FACTOR_PIPELINE_POSTGRES_URL is set (docs/operations.md).
# Copied every time, so that setting or unsetting the variable takes effect.
INSTANCE_YAML := $(if $(FACTOR_PIPELINE_POSTGRES_URL),dagster.postgres.yaml,dagster.yaml)
.PHONY: $(DAGSTER_HOME)/dagster.yaml
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp $(INSTANCE_YAML) $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/factor-pipeline backfill --from $(DEMO_FROM) --to $(DEMO_TO) --executor in_process
	$(BIN)/factor-pipeline report

# Two workers; the tests sharing the smoke backfill's home stay on one, in order (conftest.py's xdist_group).
# PYTEST_WORKERS= runs serially.
PYTEST_WORKERS ?= -n 2 --dist loadgroup

# The full lane: every test, and the 15 slowest printed so that a creeping test is noticed.
test: install
	$(BIN)/pytest -q $(PYTEST_WORKERS) --durations=15 factor_pipeline_tests

# The fast lane (under 2 minutes on 2 cores): every stage's logic, without the tests that drive whole
# Dagster runs through the CLI, the webserver or subprocesses (marked `slow`).
test-fast: install
	$(BIN)/pytest -q $(PYTEST_WORKERS) -m "not slow" --durations=15 factor_pipeline_tests

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

validate: install
	$(BIN)/dagster definitions validate -w workspace.yaml

bench: install
	$(BIN)/python bench/run_all.py

# Outside make bench's hour. The learning curve at the seed's 5,000 names (demo model, 400-session window,
# 18 months; about 45 min of one core per seed), and the full profile through the pipeline (hours on 2 cores).
SCALE_SEED ?= 0
bench-scale: install
	OMP_NUM_THREADS=1 $(BIN)/python bench/slow_features.py --stocks 5000 --window 400 --seed $(SCALE_SEED) \
		--runs 'n5000w400:' --out bench/results/scale-5000-seed$(SCALE_SEED).json

bench-full: install
	$(BIN)/python bench/full_profile.py --home $(FACTOR_PIPELINE_HOME)/full-profile --out bench/results/full-profile.json

clean:
	rm -rf $(FACTOR_PIPELINE_HOME)
