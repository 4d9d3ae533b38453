"""OpenVINO on the CPU: runs the ONNX file vanexport wrote (static or dynamic batch) in FP32, or in the CPU's native
lower precision (BF16 where the CPU has AVX512_BF16 or AMX, FP16 on ARM), and says which precision actually ran.

OpenVINO's CPU plugin computes in BF16 by default on CPUs that have it, which moves VAN-b0's logits by ~2e-2: FP32 is
asked for explicitly, so the faithful precision is the default here. The file's metadata_props reach us through
OpenVINO's rt_info (`framework` section), so a bare ONNX file describes itself without the `onnx` package.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import VanexportError

HINT = "install the openvino extra: pip install 'vanexport[openvino]' (or pip install openvino)"
# vanexport's precision name -> OpenVINO's element type name (INFERENCE_PRECISION_HINT, runtimePrecision)
OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_RAN = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}
LOWER_PRECISIONS = ("bf16", "fp16")  # what a CPU may compute in natively besides FP32, preferred first
# Layers whose precision is the model's arithmetic (data movement such as Reorder/Reshape is not counted).
_COMPUTE_LAYERS = ("Convolution", "FullyConnected", "MatMul", "Eltwise", "RMS", "MVN", "Reduce")


def import_openvino():
    """The `openvino` module, or a one-line VanexportError."""
    try:
        import openvino
    except ImportError as e:
        raise VanexportError(f"OpenVINO is not installed ({str(e).splitlines()[0] if str(e) else 'ImportError'})",
                             HINT) from e
    return openvino


def cpu_precisions(core=None) -> tuple[str, ...]:
    """The precisions this CPU computes natively through OpenVINO ("fp32" first, then e.g. "bf16", "int8")."""
    if core is None:
        core = import_openvino().Core()
    caps = {str(c).lower() for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")}
    return ("fp32",) + tuple(p for p in (*LOWER_PRECISIONS, "int8") if p in caps)


def native_lower_precision(precisions: tuple[str, ...]) -> str | None:
    """The lower precision this CPU would run a model in (BF16 before FP16), or None: FP32 only."""
    return next((p for p in LOWER_PRECISIONS if p in precisions), None)


class OpenVinoBackend:
    """`backend(x)` -> logits for a float32 NCHW batch, OpenVINO's CPU plugin, one infer request (latency)."""

    name = "openvino"
    device = "cpu"

    def __init__(self, model, precision: str = "fp32", threads: int | None = None, cache_dir=None):
        """`precision`: OpenVINO's inference precision: "fp32" (faithful; an INT8 Q/DQ file still runs in int8),
        "bf16" or "fp16" (refused where the CPU does not compute in it natively: OpenVINO would quietly run FP32),
        or "int8": an INT8 file, run in INT8 where it is quantized and in FP32 elsewhere (refused when most of its
        compute layers do not run in INT8: the file is not INT8, or this CPU has no INT8 kernels).
        `cache_dir`: OpenVINO's compiled-model cache (a warm start skips most of the compile)."""
        ov = import_openvino()
        if precision not in OV_TYPES and precision != "int8":
            raise VanexportError(f"OpenVINO cannot run precision '{precision}' from an ONNX file",
                                 f"choose one of {', '.join(OV_TYPES)}, int8")
        self.path = Path(model)
        core = ov.Core()
        self.cpu_precisions = cpu_precisions(core)
        if precision not in self.cpu_precisions:
            raise VanexportError(f"this CPU has no native {precision.upper()} for OpenVINO (it computes in "
                                 f"{', '.join(p.upper() for p in self.cpu_precisions)})",
                                 "use FP32 (--precision fp32); BF16 needs AVX512_BF16 or AMX, FP16 an ARM CPU")
        try:
            self.model = core.read_model(str(self.path))
        except RuntimeError as e:  # OpenVINO's frontends raise plain RuntimeErrors with long C++ messages
            raise VanexportError(f"OpenVINO cannot read '{self.path}' ({_first_line(e)})",
                                 "check the file with `vanexport inspect`, or export it again") from e
        # INT8: what the file leaves unquantized computes in FP32, so its error is the quantization's alone
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OV_TYPES.get(precision, "f32")}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if cache_dir:
            config["CACHE_DIR"] = str(cache_dir)
        try:
            self.compiled = core.compile_model(self.model, "CPU", config)
        except RuntimeError as e:
            raise VanexportError(f"OpenVINO cannot compile '{self.path.name}' for the CPU ({_first_line(e)})",
                                 "run it with ONNX Runtime instead (--backend onnxruntime-cpu)") from e
        self.layer_precisions = runtime_precisions(self.compiled)
        self.precision = ran_precision(self.layer_precisions)
        if precision != "fp32" and self.precision != precision:
            raise VanexportError(f"OpenVINO was asked for {precision.upper()} but compiled the model in "
                                 f"{self.precision.upper()} ({describe_precisions(self.layer_precisions)})",
                                 "use FP32 (--precision fp32)")
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.version = ov.__version__
        self.request = self.compiled.create_infer_request()
        port = self.model.inputs[0]
        self.input_name = port.get_any_name()
        # an FP16 graph converted without keep_io_types takes float16
        self.input_dtype = np.float16 if port.get_element_type() == ov.Type.f16 else np.float32

    @property
    def precision_note(self) -> str:
        """What ran, in a few words: "bf16 (OpenVINO 2026.4, 2 threads; 217 of 217 compute layers in bf16)"."""
        return (f"{self.precision} (OpenVINO {self.version.split('-')[0]}, {self.threads} threads; "
                f"{describe_precisions(self.layer_precisions)})")

    @property
    def metadata(self) -> dict[str, str]:
        """The ONNX file's metadata_props (what vanexport wrote), as OpenVINO keeps them in rt_info["framework"]."""
        info = self.model.get_rt_info()
        if "framework" not in info:
            return {}
        framework = info["framework"]
        return {str(k): framework[k].astype(str) if hasattr(framework[k], "astype") else str(framework[k])
                for k in framework}

    def check_matches(self, meta, name: str) -> None:
        """Refuse a file whose graph does not have the input, output and class count its metadata promises."""
        inputs = [p.get_any_name() for p in self.model.inputs]
        outputs = {n: p.get_partial_shape() for p in self.model.outputs for n in p.get_names()}
        problem = None
        if inputs != [meta.input_name]:
            problem = f"its graph takes {inputs} but its metadata says '{meta.input_name}'"
        elif meta.output_name not in outputs:
            problem = f"its graph gives {sorted(outputs)} but its metadata says '{meta.output_name}'"
        else:
            classes = outputs[meta.output_name][-1]
            if classes.is_static and classes.get_length() != meta.num_classes:
                problem = f"its graph gives {classes.get_length()} classes but its metadata says {meta.num_classes}"
        if problem:
            raise VanexportError(f"'{name}' does not match its own metadata: {problem}",
                                 "export it again with `vanexport onnx` (the file was changed after export)")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # share_inputs: no copy of the batch into the request; the outputs are copied (the request reuses them)
        out = self.request.infer({0: np.ascontiguousarray(x, dtype=self.input_dtype)}, share_inputs=True,
                                 share_outputs=False)
        return np.asarray(out[0]).astype(np.float32, copy=False)


def runtime_precisions(compiled) -> Counter:
    """How many compute layers of the compiled (executable) graph run in each precision, e.g. {"bf16": 217}."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in _COMPUTE_LAYERS:
            counts[info["runtimePrecision"].astype(str)] += 1
    return counts


def ran_precision(counts: Counter) -> str:
    """vanexport's name of the precision most compute layers ran in ("fp32", "bf16", "fp16", "int8", else
    OpenVINO's own name). An INT8 Q/DQ file runs its convolutions in int8 whatever the hint."""
    if not counts:
        return "fp32"
    top = counts.most_common(1)[0][0]
    return _RAN.get(top, top)


def describe_precisions(counts: Counter) -> str:
    """"200 of 204 compute layers in bf16, 4 in f32"."""
    (top, n), *rest = counts.most_common() or [("f32", 0)]
    return ", ".join([f"{n} of {sum(counts.values())} compute layers in {top}"] + [f"{m} in {p}" for p, m in rest])


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:160]
