"""PyTorch eager: the reference every artifact is checked against."""
from __future__ import annotations

import numpy as np


class TorchBackend:
    name = "torch"

    def __init__(self, model, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.device = device

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()
