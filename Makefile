# Two entry points for a fresh machine: `make demo` (the main job end to end, offline) and `make test`;
# on a machine with an NVIDIA GPU, `make test-gpu` builds and checks real TensorRT engines.
PYTHON   ?= $(shell command -v python3.11 || command -v python3)
VENV     ?= .venv
BIN       = $(VENV)/bin
GPU_VENV ?= .venv-gpu

.PHONY: setup setup-gpu setup-jetson demo test test-fast test-gpu smoke-gpu bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/cpu.txt -e ".[export,cpu,dev]"
	touch $@

# The main job end to end, offline, on a CPU, in a few minutes: VAN-b0 trained here on scikit-learn's digits (once,
# cached), its FP32 ONNX, FP16 and INT8 files with their accuracy cost measured on 400 held-out digits, a checked
# bundle of all three, and a prediction from the bundle on a held-out digit. Everything lands in $(DEMO)/.
# Each step prints its progress on stderr.
DEMO ?= demo
DIGITS = zero one two three four five six seven eight nine
demo: setup
	@mkdir -p $(DEMO)
	@echo "== 1/5 VAN-b0 trained on scikit-learn's digits (once, then cached), exported to ONNX and checked"
	$(BIN)/python -m vanexport.zoo.digits $(DEMO) > $(DEMO)/digits.json
	@printf '%s\n' $(DIGITS) > $(DEMO)/labels.txt
	@echo "== 2/5 FP16, its cost measured on the 400 held-out digits"
	$(BIN)/vanexport quantize $(DEMO)/van_b0_64.onnx --precision fp16 --images $(DEMO)/heldout
	@echo "== 3/5 INT8 calibrated on 300 other digits, its cost measured on the same held-out digits"
	$(BIN)/vanexport quantize $(DEMO)/van_b0_64.onnx --precision int8 --calib $(DEMO)/calib --images $(DEMO)/heldout
	@echo "== 4/5 a bundle of the three, each checked again, for a device"
	$(BIN)/vanexport bundle --model $(DEMO)/van_b0_64.onnx --precision fp32,fp16,int8 --calib $(DEMO)/calib \
		--labels $(DEMO)/labels.txt --check-images $(DEMO)/heldout/7 -o $(DEMO)/van_digits_bundle.tar.gz
	@echo "== 5/5 a prediction from the bundle, without PyTorch, on a held-out 7"
	$(BIN)/vanexport predict $(DEMO)/heldout/7/$$(ls $(DEMO)/heldout/7 | head -n 1) \
		--model $(DEMO)/van_digits_bundle.tar.gz --topk 3

# A pytest worker per CPU core (pytest-xdist): most tests keep one core busy, not two.
test: setup
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# Without the tests marked slow (the trained digits model, b1 and dynamic-H/W exports, the real bench runs).
test-fast: setup
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow"

# The tested GPU set (constraints/gpu.txt: TensorRT 10, onnxruntime-gpu with its CUDA/cuDNN libraries, CUDA
# PyTorch, one CUDA major); `make setup-gpu TRT=11` takes TensorRT 11 instead (constraints/gpu-trt11.txt), with
# which ONNX Runtime's TensorRT provider cannot load. TensorRT's libraries come from pypi.nvidia.com.
TRT ?= 10
GPU_CONSTRAINTS = $(if $(filter 11,$(TRT)),constraints/gpu-trt11.txt,constraints/gpu.txt)
setup-gpu: $(GPU_VENV)/.installed-trt$(TRT)

$(GPU_VENV)/.installed-trt$(TRT): pyproject.toml $(GPU_CONSTRAINTS)
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install -q --upgrade pip
	$(GPU_VENV)/bin/pip install -q -c $(GPU_CONSTRAINTS) -e ".[export,gpu,dev]"
	rm -f $(GPU_VENV)/.installed-trt*
	touch $@

# A Jetson: JetPack's TensorRT, PyTorch and ONNX Runtime stay as they are (PyPI's would replace them with builds
# for another platform). The venv sees them (--system-site-packages); vanexport goes in without its dependencies,
# then only the few it needs that JetPack lacks (tests/test_install.py checks that this plan installs none of those).
JETSON_VENV ?= .venv-jetson
JETSON_PYTHON ?= /usr/bin/python3  # JetPack's own Python: the one its TensorRT and PyTorch are installed for
JETSON_DEPS  = "click>=8.1" "rich>=13" "pillow>=10"  # numpy: JetPack's, which its PyTorch and TensorRT are built against
setup-jetson: $(JETSON_VENV)/.installed

$(JETSON_VENV)/.installed: pyproject.toml
	$(JETSON_PYTHON) -m venv --system-site-packages $(JETSON_VENV)
	$(JETSON_VENV)/bin/pip install -q --no-deps -e .
	$(JETSON_VENV)/bin/pip install -q $(JETSON_DEPS)
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
	rm -rf $(VENV) $(GPU_VENV) $(JETSON_VENV) $(DEMO) engines/*.onnx engines/*.plan engines/*.json engines/*.cache .pytest_cache
