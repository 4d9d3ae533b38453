"""FP32 ONNX -> mixed FP16 ONNX, or Q/DQ INT8 ONNX, in the form TensorRT's strongly typed builds accept.

Since TensorRT 11 the precision of an engine is decided by the ONNX file, so both conversions happen here, on a
CPU, with ONNX Runtime's own tools (see docs/precision.md). `sensitivity` finds the layers that lose accuracy.
"""
