# Two entry points for a fresh machine: `make demo` (export + validate VAN-b0) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup demo test test-gpu bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/cpu.txt -e ".[cpu,dev]"
	touch $@

demo: setup
	$(BIN)/vanexport onnx --variant b0

test: setup
	$(BIN)/python -m pytest -q

test-gpu: setup
	$(BIN)/python -m pytest -q -m "gpu or tensorrt" -rs

bench: setup
	$(BIN)/python benchmarks/bench_cpu.py

clean:
	rm -rf $(VENV) engines/*.onnx engines/*.plan engines/*.json .pytest_cache
