"""PyTorch -> ONNX: export, simplification, and the check against PyTorch before the file is written."""
