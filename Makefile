# distillery: `make help` lists the targets. Every target installs what it needs first (.venv).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# torch first, so the rest does not pull a CUDA build: 2.13.0's CPU wheel is on disk on our
# machines. GPU users: make install TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128 EXTRAS=dev,gpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev

RECIPE ?= recipes/demo.yaml
SET ?=
RUN_FLAGS ?=
DISTILLERY := $(BIN)/distillery
SET_ARGS := $(if $(strip $(SET)),--set $(SET))
PYTEST_ARGS ?=
# The suite runs in one pytest-xdist worker per core (TEST_WORKERS=0 runs it in one process, e.g.
# to debug). `worksteal` hands each worker a contiguous half of the tests, so a module's fixtures
# are mostly built once, and an idle worker takes tests from the busy one's tail.
TEST_WORKERS ?= auto
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

help: ## list the targets
	@echo "distillery: distill a BERT teacher into a small student, quantize, export, benchmark."
	@echo "Usage: make TARGET [RECIPE=recipes/x.yaml] [SET=\"key=value key2=value2\"]"
	@grep -E '^[a-z][a-z0-9_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

install: $(INSTALLED) ## create .venv and install distillery with its dependencies

test: $(INSTALLED) ## run the test suite (real tests run when ../shared exists)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(INSTALLED) ## the library and stage tests, without the slow ones (under 5 min on 2 cores)
	$(BIN)/python -m pytest tests/lib tests/stages -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-gpu: $(INSTALLED) ## run the tests marked gpu (skipped without CUDA)
	$(BIN)/python -m pytest -m gpu -rs $(PYTEST_ARGS)

bench-gpu: $(INSTALLED) ## GPU rows only (torch, ORT CUDA fp32/fp16, TensorRT int8) for RECIPE's artifacts; exits 0 without CUDA
	$(DISTILLERY) bench-gpu $(RECIPE) $(SET_ARGS) $(if $(DISTILLERY_RUNS),--runs-dir $(DISTILLERY_RUNS))
.PHONY: bench-gpu

lint: $(INSTALLED) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

validate: $(INSTALLED) ## check RECIPE without running it
	$(DISTILLERY) validate $(RECIPE) $(SET_ARGS)

demo: $(INSTALLED) ## run recipes/demo.yaml offline (tiny BERT, generated data)
	$(DISTILLERY) run recipes/demo.yaml $(SET_ARGS) $(RUN_FLAGS)
	@echo "report: runs/demo/report/README.md  edge bundle: runs/demo/bundle/"

demo-transfer: $(INSTALLED) ## run recipes/demo-transfer.yaml offline (a small target task and two source tasks)
	$(DISTILLERY) run recipes/demo-transfer.yaml $(SET_ARGS) $(RUN_FLAGS)
	@echo "report: runs/demo-transfer/report/README.md  edge bundle: runs/demo-transfer/bundle/"

demo-tasks: $(INSTALLED) ## run the offline task-type demos: sentence pairs, regression, multi-label, NER
	for kind in pairs regression multilabel ner; do $(DISTILLERY) run recipes/demo-$$kind.yaml $(SET_ARGS) $(RUN_FLAGS) || exit 1; done
	@echo "reports: runs/demo-{pairs,regression,multilabel,ner}/report/README.md"

pipeline: $(INSTALLED) ## run every stage of RECIPE, skipping the ones already done
	$(DISTILLERY) run $(RECIPE) $(SET_ARGS) $(RUN_FLAGS)

# One target per stage: runs that stage of RECIPE and, first, any earlier stage not yet done.
STAGE_CMD = $(DISTILLERY) run $(RECIPE) --stage $@ $(SET_ARGS) $(RUN_FLAGS)
teacher: $(INSTALLED) ## stage: fine-tune (or evaluate) the teacher of RECIPE
	$(STAGE_CMD)
distill: $(INSTALLED) ## stage: build the student and distill it
	$(STAGE_CMD)
export: $(INSTALLED) ## stage: ONNX export, ORT fusion, parity on the eval split
	$(STAGE_CMD)
quantize: $(INSTALLED) ## stage: int8 (ORT dynamic/static, Neural Compressor) + accuracy gate
	$(STAGE_CMD)
bench: $(INSTALLED) ## stage: latency grid, real-length serving, roofline (each backend in its own process)
	$(STAGE_CMD)
report: $(INSTALLED) ## stage: runs/<name>/report/ README.md, results.json, pareto.png, latency.png
	$(STAGE_CMD)
ARTIFACT ?=
bundle: $(INSTALLED) ## stage: runs/<name>/bundle/ ONNX + tokenizer + predict.py for a device [ARTIFACT=name]
	$(DISTILLERY) bundle $(RECIPE) $(if $(ARTIFACT),--artifact $(ARTIFACT)) $(SET_ARGS) $(RUN_FLAGS)

search: $(INSTALLED) ## search students of RECIPE (its search section), then train and ship the pick
	$(DISTILLERY) search $(RECIPE) $(SET_ARGS) $(RUN_FLAGS)

distill-ablation: $(INSTALLED) ## distill RECIPE several ways (distill.ablation_variants) and tabulate
	$(DISTILLERY) run $(RECIPE) --stage distill --set distill.ablation=true $(SET) $(RUN_FLAGS)

clean: ## remove runs/, caches and the .venv
	rm -rf runs $(VENV) .pytest_cache .ruff_cache *.egg-info

.PHONY: help install test test-fast test-gpu lint format validate demo demo-transfer demo-tasks pipeline teacher distill export quantize bench report bundle search distill-ablation clean
