"""Backends that run a VAN and return logits, behind one small interface.

A backend is a callable `backend(x: float32 NCHW numpy array) -> logits numpy array` with the attributes
`name` ("torch", "onnxruntime", "tensorrt") and `device` ("cpu" or "cuda"). Validation, benchmarks and
prediction all use the same backends; each imports its heavy dependency only when constructed.
"""
from typing import Protocol

import numpy as np


class Backend(Protocol):
    name: str
    device: str

    def __call__(self, x: np.ndarray) -> np.ndarray: ...
