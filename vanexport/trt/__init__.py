"""TensorRT engines: build settings, the manifest beside every plan, building, and the checks before loading.

TensorRT itself is imported only inside functions (see `environment.import_tensorrt`), so settings, manifests and
compatibility checks work, and are tested, on machines without it. Every TensorRT name this package touches was
checked against the bindings of TensorRT 10.16.1.11 and 11.4.0.106 (`../shared/tools/trt-api check`); the list is in
the README ("TensorRT API surface"). Features that one of the two lacks are detected with `hasattr` on the
installed module, never by parsing its version string.
"""
