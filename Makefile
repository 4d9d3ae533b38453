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

clean:
	rm -rf $(VENV) $(GPU_VENV) engines/*.onnx engines/*.plan engines/*.json engines/*.cache .pytest_cache
