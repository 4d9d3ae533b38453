# Two entry points for a fresh machine: `make demo` (export + validate VAN-b0) and `make test`;
# on a machine with an NVIDIA GPU, `make test-gpu` builds and checks real TensorRT engines.
PYTHON   ?= $(shell command -v python3.11 || command -v python3)
VENV     ?= .venv
BIN       = $(VENV)/bin
GPU_VENV ?= .venv-gpu

.PHONY: setup setup-gpu demo test test-fast test-gpu smoke-gpu bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/cpu.txt -e ".[export,cpu,dev]"
	touch $@

demo: setup
	$(BIN)/vanexport onnx --variant b0

# A pytest worker per CPU core (pytest-xdist): most tests keep one core busy, not two.
test: setup
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# Without the tests marked slow (the trained digits model, b1 and dynamic-H/W exports, the real bench runs).
test-fast: setup
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow"

# CUDA PyTorch (PyPI's default Linux wheels), onnxruntime-gpu and TensorRT (whose libraries pip fetches from
# pypi.nvidia.com). --system-site-packages lets JetPack's TensorRT and PyTorch show through on a Jetson.
setup-gpu: $(GPU_VENV)/.installed

$(GPU_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(GPU_VENV)
	$(GPU_VENV)/bin/pip install -q --upgrade pip
	$(GPU_VENV)/bin/pip install -q -e ".[export,gpu,dev]"
	touch $@

test-gpu: setup-gpu
	$(GPU_VENV)/bin/python -m pytest -q -m "gpu or tensorrt" -rs

# Every TensorRT line once, on this machine's GPU: one JSON report (benchmarks/results/smoke_gpu.json).
smoke-gpu: setup-gpu
	$(GPU_VENV)/bin/python benchmarks/smoke_gpu.py -o benchmarks/results/smoke_gpu.json

bench: setup
	$(BIN)/python benchmarks/bench_cpu.py

# Mutation testing (mutmut; docs/testing.md#mutation-testing): one-line bugs planted in the modules where a silent
# slip costs most, each run against the fast tests that call it (pyproject.toml [tool.mutmut]). MUTATE picks the
# mutants (module globs); MUTATE_MINUTES bounds a run: results stay in mutants/, and the next run goes on from there.
MUTATE ?= vanexport.check.metrics* vanexport.check.tolerances* vanexport.model.van* vanexport.formats.*
MUTATE_MINUTES ?= 60
.PHONY: mutate
mutate: setup
	-timeout $(MUTATE_MINUTES)m nice -n 19 $(BIN)/mutmut run --max-children 2 $(MUTATE)
	@$(BIN)/mutmut results --all true | sed -E 's/^ *(.*)\.x(_|ǁ).*: (.*)$$/\1 \3/' | awk '\
	  {m=$$1; $$1=""; s=substr($$0, 2); n[m]++; c[m, s]++} \
	  END {for (m in n) printf "%-40s %4d mutants: %4d killed, %4d survived, %3d timeout, %3d no tests, %3d not run\n", \
	       m, n[m], c[m, "killed"], c[m, "survived"], c[m, "timeout"], c[m, "no tests"], c[m, "not checked"]}' | sort

clean:
	rm -rf $(VENV) $(GPU_VENV) engines/*.onnx engines/*.plan engines/*.json engines/*.cache .pytest_cache
