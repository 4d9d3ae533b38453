"""PyTorch eager: the reference every artifact is checked against."""
from __future__ import annotations

import numpy as np


class TorchBackend:
    name = "torch"

    def __init__(self, model, device: str = "cpu", autocast_fp16: bool = False):
        """`autocast_fp16`: run under torch.autocast(float16), as PyTorch users deploy FP16 on CUDA."""
        self.model = model.eval().to(device)
        self.device = device
        self.autocast_fp16 = autocast_fp16

    def forward(self, x):
        """Tensor on `device` in, logits tensor on `device` out (asynchronous on CUDA)."""
        import torch

        device_type = torch.device(self.device).type  # "cuda:1" -> "cuda"
        with torch.inference_mode(), torch.autocast(device_type, torch.float16, enabled=self.autocast_fp16):
            return self.model(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        return self.forward(torch.from_numpy(x).to(self.device)).float().cpu().numpy()
