"""PyTorch -> ONNX, simplification, and metadata."""
