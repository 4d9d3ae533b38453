"""TensorRT engines from ONNX files: build settings, the builder (parse, configure, build), and `build_engine`,
which writes a plan with its manifest only after checking it against PyTorch.

TensorRT itself is imported only inside functions (see `machine.import_tensorrt`), so settings and their mapping
to TensorRT's configuration work, and are tested, on machines without it. Every TensorRT name vanexport touches was
checked against the Python bindings of TensorRT 10.3.0 (JetPack 6), 10.16.1.11 and 11.4.0.106; the list is in
docs/tensorrt.md ("TensorRT API surface"). Features that one release lacks are detected with `hasattr` on the
installed module, never by parsing its version string (the one exception, where DLA exists, is in
settings.dla_problem). The builder uses TensorRT's own API, not Polygraphy's loaders, so that a device builds too.
Running a plan is the runtime's job (vanexport.runtime.tensorrt_backend).
"""
