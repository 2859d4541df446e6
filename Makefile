# Two entry points, each doing its own setup on a machine that has only Python >= 3.11:
#   make run    trains and reports every mode (snakemake --cores all on config.yaml)
#   make test   runs the test suite
# uv comes from PATH, or is bootstrapped from PyPI into .tools/ the first time.
# GPU picks MXNet's build from uv.lock (README: GPUs): empty for the CPU one, or a CUDA 11.x one,
# e.g. `make run GPU=cu117`. .venv holds one build at a time: each target installs the one asked for.
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
ARGS ?=
GPU ?=
BUILDS := cpu cu110 cu112 cu113 cu114 cu115 cu116 cu117
BUILD := $(or $(GPU),cpu)
ifneq ($(filter-out $(BUILDS),$(BUILD))$(word 2,$(BUILD)),)
$(error GPU=$(GPU) is not a build in uv.lock; use one of $(filter-out cpu,$(BUILDS)), or no GPU= for the CPU build)
endif

.PHONY: setup run test report lint watch

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

# --compile-bytecode: every job and test is a new Python process; without .pyc files (or where
# PYTHONDONTWRITEBYTECODE is set, as on our CI machines) each one compiles all it imports again,
# about two thirds of the CPU time of a Snakemake or MXNet start.
setup: $(UV)
	$(UV) sync --locked --compile-bytecode --extra $(BUILD) --extra export

run: setup
	.venv/bin/snakemake --cores all $(ARGS)

report: setup
	.venv/bin/snakemake --report report.html $(ARGS)

# Beside a running `make run`, in a second terminal: no setup here, which would sync .venv under
# the running jobs.
watch:
	.venv/bin/rnnlm watch results $(ARGS)

test: setup
	.venv/bin/pytest $(ARGS)

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/snakefmt --check Snakefile workflow
	# snakemake --lint always asks for conda envs (none can hold mxnet 1.9.1 with numpy 2):
	# this test fails on any other finding, and when lint did not run or printed what it cannot read.
	.venv/bin/pytest -q tests/test_workflow.py -k lint_finds_nothing
