"""TensorRT plans behind the Backend interface. PyTorch CUDA tensors are the device buffers; TensorRT runs them with
set_input_shape / set_tensor_address / execute_async_v3 on a CUDA stream of its own.

A plan is loaded only after its manifest says it fits this machine (TensorRT version, compute capability) and its
hash matches: TensorRT itself would fail with an opaque "magic tag" or version message, or worse, load it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VanexportError

TORCH_HINT = ("install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/; on Jetson, NVIDIA's "
              "JetPack wheel): the TensorRT backend uses its CUDA tensors as device buffers")


def cuda_torch(device: int = 0):
    try:
        import torch
    except ImportError as e:
        raise VanexportError("PyTorch is not installed", TORCH_HINT) from e
    if not torch.cuda.is_available():
        raise VanexportError(f"this PyTorch ({torch.__version__}) cannot use the GPU (a CPU-only build, "
                             "or one built for a newer driver)", TORCH_HINT)
    if device >= torch.cuda.device_count():
        raise VanexportError(f"no CUDA device {device} ({torch.cuda.device_count()} visible to PyTorch)",
                             "check CUDA_VISIBLE_DEVICES")
    return torch


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
    """`backend(x)` -> logits for a float32 NCHW batch `x` within the engine's profile."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, plan_path, device: int = 0, manifest=None):
        from ..formats.engine_manifest import check_loadable, read_manifest
        from ..machine import require_tensorrt, tensorrt_version
        from . import tensorrt_engine as trt_engine

        self.path = Path(plan_path)
        if not self.path.is_file():
            raise VanexportError(f"plan file '{self.path}' not found", "build one with `vanexport trt`")
        trt, self.gpu = require_tensorrt(device)
        self.manifest = manifest or read_manifest(self.path)
        self.warnings = check_loadable(self.path, self.manifest, tensorrt_version(trt), self.gpu)
        torch = self._torch = cuda_torch(device)
        self._device = torch.device("cuda", device)
        self.logger = trt_engine.collecting_logger(trt)
        with torch.cuda.device(self._device):
            self.runtime, self.engine = trt_engine.deserialize(
                trt, self.logger, self.path.read_bytes(), host_code=self.manifest.tensorrt.version_compatible,
                dla_core=self.manifest.tensorrt.dla_core)
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise VanexportError(f"TensorRT cannot create an execution context for {self.path.name} "
                                     f"({self.logger.last_error('out of GPU memory?')})", "free GPU memory and retry")
            self.stream = torch.cuda.Stream()
        self.inputs, self.outputs = trt_engine.engine_io(trt, self.engine)
        if len(self.inputs) != 1:
            raise VanexportError(f"{self.path.name} has {len(self.inputs)} inputs", "expected one image input (a VAN)")
        self.input_name = self.inputs[0].name
        self.profile = self.inputs[0].profile

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        check_in_profile(x.shape, self.profile, self.input_name)
        host = torch.from_numpy(np.ascontiguousarray(x, dtype=np.dtype(self.inputs[0].dtype)))
        with torch.cuda.device(self._device), torch.cuda.stream(self.stream):
            x_dev = host.to(self._device, non_blocking=True)  # queued on self.stream, before the engine
            if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
                raise VanexportError(f"TensorRT refused input shape {_fmt(x.shape)} ({self.logger.last_error()})",
                                     "check the engine's profile with `vanexport inspect`")
            self.context.set_tensor_address(self.input_name, x_dev.data_ptr())
            outputs = {}
            for out in self.outputs:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(out.name))
                outputs[out.name] = torch.empty(shape, dtype=getattr(torch, out.dtype), device=self._device)
                self.context.set_tensor_address(out.name, outputs[out.name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise VanexportError(f"TensorRT failed to run {self.path.name} ({self.logger.last_error()})",
                                     "run with --debug; check GPU memory with nvidia-smi")
            self.stream.synchronize()
        return outputs[self.outputs[0].name].float().cpu().numpy()
