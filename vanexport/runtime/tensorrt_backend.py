"""TensorRT plans behind the Backend interface, without PyTorch: device buffers, a stream and the copies come from
the CUDA driver API (`runtime.cuda`); TensorRT runs them with set_input_shape / set_tensor_address /
execute_async_v3 on that stream.

A plan is loaded only after its manifest says it fits this machine (platform, TensorRT version, compute capability)
and its hash matches: TensorRT itself would fail with an opaque "magic tag" or version message, or worse, load it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VanexportError


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape)


def check_in_profile(shape, profile, name: str = "input") -> None:
    """A clear error, naming the profile, for a shape the engine was not built for (TensorRT would only log an
    error and return False, or crash later on unset shapes)."""
    if profile.fits(shape):
        return
    lo, opt, hi = profile.min, profile.opt, profile.max
    problem = (f"input '{name}' of shape {_fmt(shape)} is outside the engine's optimization profile "
               f"(min {_fmt(lo)}, opt {_fmt(opt)}, max {_fmt(hi)})")
    if len(shape) != len(lo):
        hint = f"pass a {len(lo)}-D NCHW batch"
    elif shape[0] > hi[0]:
        hint = f"send at most {hi[0]} images per call, or rebuild the engine with --max-batch {shape[0]}"
    elif shape[0] < lo[0]:
        hint = f"send at least {lo[0]} images per call, or rebuild the engine with --min-batch {shape[0]}"
    else:
        hint = (f"resize the images to {_fmt(opt[2:])}, or export with --dynamic-hw and rebuild with "
                "--min-img-size/--max-img-size")
    raise VanexportError(problem, hint)


class TensorRTBackend:
    """`backend(x)` -> logits for a float32 NCHW batch `x` within the engine's profile. Device buffers grow to
    the largest batch seen and are reused; `close()` frees them (also on garbage collection)."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, plan_path, device: int = 0, manifest=None):
        from ..formats.engine_manifest import check_loadable, read_manifest
        from ..machine import host_platform, require_tensorrt, tensorrt_version
        from . import cuda
        from . import tensorrt_engine as trt_engine

        self._cuda = None
        self.path = Path(plan_path)
        if not self.path.is_file():
            raise VanexportError(f"plan file '{self.path}' not found", "build one with `vanexport trt`")
        self._trt, self.gpu = require_tensorrt(device)
        self.manifest = manifest or read_manifest(self.path)
        self.warnings = check_loadable(self.path, self.manifest, tensorrt_version(self._trt), self.gpu,
                                       host_platform())
        self._cuda = cuda.Device(device)  # current before TensorRT creates anything: the engine is bound to it
        self._buffers: dict[str, object] = {}
        with trt_engine.capture(self._trt) as log:
            self.runtime, self.engine = trt_engine.deserialize(
                self._trt, log, self.path.read_bytes(), host_code=self.manifest.tensorrt.version_compatible,
                dla_core=self.manifest.tensorrt.dla_core)
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise VanexportError(f"TensorRT cannot create an execution context for {self.path.name} "
                                     f"({log.last_error('out of GPU memory?')})", "free GPU memory and retry")
        self.stream = self._cuda.stream()
        self.inputs, self.outputs = trt_engine.engine_io(self._trt, self.engine)
        if len(self.inputs) != 1:
            raise VanexportError(f"{self.path.name} has {len(self.inputs)} inputs", "expected one image input (a VAN)")
        self.input_name = self.inputs[0].name
        self.profile = self.inputs[0].profile

    def _buffer(self, name: str, nbytes: int):
        buf = self._buffers.get(name)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.close()
            buf = self._buffers[name] = self._cuda.alloc(nbytes)
        return buf

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from . import tensorrt_engine as trt_engine

        check_in_profile(x.shape, self.profile, self.input_name)
        host_in = np.ascontiguousarray(x, dtype=_numpy_dtype(self.inputs[0]))
        self._cuda.activate()  # this thread may not be the one that loaded the plan
        with trt_engine.capture(self._trt) as log:
            if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
                raise VanexportError(f"TensorRT refused input shape {_fmt(x.shape)} ({log.last_error()})",
                                     "check the engine's profile with `vanexport inspect`")
            d_in = self._buffer(self.input_name, host_in.nbytes)
            try:
                d_in.copy_from(host_in, self.stream)
                self.context.set_tensor_address(self.input_name, d_in.ptr)
                host_out = {}
                for out in self.outputs:
                    shape = tuple(int(d) for d in self.context.get_tensor_shape(out.name))
                    host_out[out.name] = np.empty(shape, _numpy_dtype(out))
                    self.context.set_tensor_address(out.name, self._buffer(out.name, host_out[out.name].nbytes).ptr)
                if not self.context.execute_async_v3(self.stream.handle):
                    raise VanexportError(f"TensorRT failed to run {self.path.name} ({log.last_error()})",
                                         "run with --debug; check GPU memory with nvidia-smi")
                for name, arr in host_out.items():
                    self._buffers[name].copy_to(arr, self.stream)
            finally:  # also after a failure: no buffer may be freed or regrown under queued work
                self.stream.synchronize()  # host_in and host_out stay referenced until here
        return host_out[self.outputs[0].name].astype(np.float32, copy=False)

    def close(self) -> None:
        """With the device's context current on this thread (another device's, or none, may be: a second
        backend, or __del__ on another thread): TensorRT objects first (they live in that context), then the
        buffers and the stream; the context is released last."""
        if self._cuda is None:
            return
        cuda_device, self._cuda = self._cuda, None
        try:
            with cuda_device.pushed():
                for attr in ("context", "engine", "runtime"):
                    self.__dict__.pop(attr, None)
                buffers, self._buffers = self._buffers, {}
                for buf in buffers.values():
                    buf.close()
                if getattr(self, "stream", None) is not None:
                    stream, self.stream = self.stream, None
                    stream.close()
        finally:
            cuda_device.close()

    def __enter__(self) -> "TensorRTBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown, or a driver already gone: nothing left to free
            pass


def _numpy_dtype(spec) -> np.dtype:
    try:
        return np.dtype(spec.dtype)
    except TypeError:
        raise VanexportError(f"tensor '{spec.name}' is {spec.dtype}, which numpy cannot hold",
                             "export the model with float32 or float16 inputs and outputs") from None
