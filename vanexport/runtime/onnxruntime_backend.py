"""ONNX Runtime: the one place sessions are created (CPU unless asked otherwise), and the backend around one."""
from __future__ import annotations

import numpy as np

from ..errors import VanexportError

CPU = ("CPUExecutionProvider",)


def make_session(model, providers=CPU, *, threads: int | None = None, spinning: bool | None = None):
    """An InferenceSession for `model` (a path, serialized bytes, or a ModelProto).

    Every option is chosen, from measurements on VAN-b0 at batch 1 (docs/benchmarks.md#exporters-and-session-options):
    - graph optimisation: all levels. They include the CPU's NCHWc layouts (blocked convolutions): without them
      (EXTENDED) b0 ran 2.1x slower; the level is set explicitly so no ONNX Runtime default can change it.
    - sequential execution: the parallel executor ran b0 2x slower (VAN is one chain of operators).
    - `threads`: intra-op threads (None: one per physical core, ONNX Runtime's default; one thread on two cores
      was 1.8x slower).
    - `spinning`: whether idle threads spin waiting for work (None: ONNX Runtime's default, they do). Right for one
      session answering calls one after another (predict, bench): spinning off was 1.14x slower. Pass False
      where several sessions are alive in one process, or the process computes between calls (checks,
      calibration, sensitivity): spinning pools then steal each other's cores.
    No saved optimised graph: it would save ~20 ms of a 0.1 s start, in a file valid only on the CPU that wrote it.
    """
    import onnxruntime as ort

    if any(p != CPU[0] for p in providers):
        preload_cuda_libraries(ort)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = threads
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else \
        model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=list(providers))
    except Exception as e:  # ORT raises its own Fail/InvalidGraph types from C++
        what = f"'{model}'" if isinstance(source, str) else "the model"
        raise VanexportError(f"ONNX Runtime cannot load {what} ({str(e).splitlines()[0][:160]})",
                             "check the file with `vanexport inspect`, or export it again") from e


def preload_cuda_libraries(ort) -> None:
    """Load the CUDA and cuDNN libraries of onnxruntime-gpu's `cuda`/`cudnn` extras (nvidia-* wheels), which the
    dynamic loader does not search: what `import torch` does as a side effect, needed where no torch is imported
    (the bench worker, a device). `onnxruntime.preload_dlls` is in onnxruntime/__init__.py of 1.24.4 and 1.31.1;
    it prints what it cannot load, which goes to stderr so that --json output stays clean."""
    import contextlib
    import sys

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(sys.stderr):
        try:
            preload()
        except Exception:  # a missing library shows later, as ONNX Runtime's own provider error
            pass


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model, providers=CPU, threads: int | None = None, spinning: bool | None = None):
        self.session = make_session(model, providers, threads=threads, spinning=spinning)
        self.input_name = self.session.get_inputs()[0].name
        # An FP16 graph converted without keep_io_types takes and returns float16.
        self.input_dtype = np.float16 if self.session.get_inputs()[0].type == "tensor(float16)" else np.float32
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"

    def check_matches(self, meta, name: str) -> None:
        """Refuse a file whose graph does not have the input, output and class count its metadata promises
        (edited, or written by something else): running it would mislabel every image."""
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        problem = None
        if inputs != [meta.input_name]:
            problem = f"its graph takes {inputs} but its metadata says '{meta.input_name}'"
        elif meta.output_name not in outputs:
            problem = f"its graph gives {sorted(outputs)} but its metadata says '{meta.output_name}'"
        elif isinstance(outputs[meta.output_name][-1], int) and outputs[meta.output_name][-1] != meta.num_classes:
            problem = (f"its graph gives {outputs[meta.output_name][-1]} classes but its metadata says "
                       f"{meta.num_classes}")
        if problem:
            raise VanexportError(f"'{name}' does not match its own metadata: {problem}",
                                 "export it again with `vanexport onnx` (the file was changed after export)")

    @property
    def metadata(self) -> dict[str, str]:
        """The file's metadata_props (what vanexport wrote), read without the `onnx` package."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})[0]
        return out.astype(np.float32, copy=False)
