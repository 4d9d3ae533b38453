"""Backends that run a VAN and return logits: PyTorch and ONNX Runtime (TensorRT comes later)."""
