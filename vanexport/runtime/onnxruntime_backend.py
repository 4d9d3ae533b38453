"""ONNX Runtime sessions (CPU unless asked otherwise)."""
from __future__ import annotations

import numpy as np

from ..errors import VanexportError


def session_from_proto(model_proto, providers=("CPUExecutionProvider",)):
    import onnxruntime as ort

    return ort.InferenceSession(model_proto.SerializeToString(), providers=list(providers))


def session_from_path(path, providers=("CPUExecutionProvider",), threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
    except Exception as e:  # ORT raises its own Fail/InvalidGraph types from C++
        raise VanexportError(f"ONNX Runtime cannot load '{path}' ({str(e).splitlines()[0][:160]})",
                             "check the file with `vanexport inspect`, or export it again") from e


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path, providers=("CPUExecutionProvider",), threads: int | None = None):
        self.session = session_from_path(path, providers, threads)
        self.input_name = self.session.get_inputs()[0].name
        # An FP16 graph converted without keep_io_types takes and returns float16.
        self.input_dtype = np.float16 if self.session.get_inputs()[0].type == "tensor(float16)" else np.float32
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"

    @property
    def metadata(self) -> dict[str, str]:
        """The file's metadata_props (what vanexport wrote), read without the `onnx` package."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})[0]
        return out.astype(np.float32, copy=False)
