"""Stand-ins for the CUDA driver (libcuda) and TensorRT, for the CPU tests of everything around them.

They answer like the real ones as far as vanexport's calls go, and are strict where the real ones would silently
misbehave: device addresses are above 4 GiB (a pointer passed as a 32-bit int is caught), every call checks the C
types of its arguments, memory calls need a current context (memory is freed in the context that allocated it),
and a plan runs only on the device that loaded it. Work is asynchronous, as on a GPU: copies and execute_async_v3
are queued on their stream and happen only at cuStreamSynchronize, so a missing synchronisation leaves the host
output unwritten. The "network" of a plan is tiny and known (logits = a fixed matrix times the per-channel means
of the input), so results can be checked exactly; plans can have FP16 inputs and outputs. The parser fails, when
told to, with nvonnxparser's error objects; the engine inspector answers with JSON fixtures modelled on TensorRT's
own output (tests/fixtures/tensorrt/); a corrupt timing cache is refused as TensorRT does. Names and signatures
follow TensorRT 10.16 / 11.4 and cuda.h; where each behaviour was read is said beside it and in docs/testing.md.
"""
from __future__ import annotations

import ctypes
import json
import threading
import types
from pathlib import Path

import numpy as np

CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_INVALID_CONTEXT = 1, 2, 201
ERROR_NAMES = {1: b"CUDA_ERROR_INVALID_VALUE", 2: b"CUDA_ERROR_OUT_OF_MEMORY", 201: b"CUDA_ERROR_INVALID_CONTEXT",
               999: b"CUDA_ERROR_UNKNOWN"}
BASE = 0x7F00_0000_0000  # device addresses above 4 GiB


def _out(arg):
    """The ctypes object behind byref(...)."""
    return arg._obj


class FakeDriver:
    """libcuda: `devices` is a list of dicts (name, cc "8.6", integrated, memory).

    Asynchrony, from the CUDA driver API's "API synchronization behavior" (docs.nvidia.com/cuda/cuda-driver-api/
    api-sync-behavior.html): an Async memcpy between device and pageable host memory "might be synchronous with
    respect to host", and with pinned memory it is fully asynchronous; a kernel launch (TensorRT's enqueue) always
    is. So the stand-in takes the strict reading that the contract allows: the source of a host-to-device copy is
    read at the call (the driver stages pageable memory then), and everything that reaches device or host memory
    happens in stream order at cuStreamSynchronize. Work still queued when its stream is destroyed is recorded in
    `abandoned` (nobody waited for it) and never lands.
    """

    def __init__(self, devices=None, init_result=0, version=12040):
        self.devices = devices or [{"name": "NVIDIA A10", "cc": "8.6", "integrated": False, "memory": 24 * 2**30}]
        self.init_result, self.version = init_result, version
        self.retained = {}  # device -> primary context refcount
        self.local = threading.local()  # the context stack is per thread, as in CUDA
        self.memory: dict[int, bytearray] = {}
        self.owner: dict[int, int] = {}  # allocation -> the device whose context made it
        self.next_ptr = BASE
        self.streams: set[int] = set()
        self.queues: dict[int, list] = {}  # stream -> queued (what, device pointers it touches, apply)
        self.stream_device: dict[int, int] = {}
        self.abandoned: list[str] = []
        self.frees: list[tuple] = []  # (pointer, device of the context current at cuMemFree, thread name)
        self.calls: list[tuple] = []
        self.fail: dict[str, int] = {}  # function name -> CUresult to return instead

    # helpers for the tests and the TensorRT stand-in
    @property
    def current(self):
        stack = getattr(self.local, "stack", None)
        return stack[-1] if stack else None

    def _stack(self) -> list:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack

    def read(self, ptr: int, n: int) -> bytes:
        base, buf = self._find(ptr, n)
        return bytes(buf[ptr - base:ptr - base + n])

    def write(self, ptr: int, data: bytes) -> None:
        base, buf = self._find(ptr, len(data))
        buf[ptr - base:ptr - base + len(data)] = data

    def _find(self, ptr, n):
        for base, buf in self.memory.items():
            if base <= ptr and ptr + n <= base + len(buf):
                return base, buf
        raise AssertionError(f"no device allocation holds {n} bytes at {ptr:#x}")

    def enqueue(self, stream: int, what: str, pointers, apply) -> None:
        """Queue work on `stream` (TensorRT's stand-in queues its execution here too)."""
        assert stream in self.streams, f"{what} on a stream that does not exist"
        self.queues[stream].append((what, tuple(pointers), apply))

    def pending(self) -> list[str]:
        return [what for queue in self.queues.values() for what, _, _ in queue]

    def _log(self, *call):
        self.calls.append(call)
        return self.fail.get(call[0], 0)

    # the driver API
    def cuInit(self, flags):
        return self.init_result

    def cuGetErrorName(self, code, out):
        _out(out).value = ERROR_NAMES.get(code)
        return 0 if _out(out).value else 1

    def cuDriverGetVersion(self, out):
        _out(out).value = self.version
        return 0

    def cuDeviceGetCount(self, out):
        _out(out).value = len(self.devices)
        return 0

    def cuDeviceGet(self, out, index):
        assert isinstance(index, ctypes.c_int)
        if not 0 <= index.value < len(self.devices):
            return CUDA_ERROR_INVALID_VALUE
        _out(out).value = index.value
        return 0

    def cuDeviceGetName(self, buf, size, device):
        name = self.devices[device.value]["name"].encode() + b"\0"
        ctypes.memmove(buf, name, min(len(name), size))
        return 0

    def cuDeviceGetAttribute(self, out, attribute, device):
        d = self.devices[device.value]
        major, minor = d["cc"].split(".")
        _out(out).value = {75: int(major), 76: int(minor), 18: int(d.get("integrated", False))}[attribute]
        return 0

    def cuDeviceTotalMem_v2(self, out, device):
        _out(out).value = self.devices[device.value].get("memory", 2**34)
        return 0

    def cuDevicePrimaryCtxRetain(self, out, device):
        assert isinstance(device, ctypes.c_int)
        rc = self._log("cuDevicePrimaryCtxRetain", device.value)
        if rc:
            return rc
        self.retained[device.value] = self.retained.get(device.value, 0) + 1
        _out(out).value = 0x1000 + device.value  # the context handle
        return 0

    def cuDevicePrimaryCtxRelease_v2(self, device):
        self._log("cuDevicePrimaryCtxRelease", device.value)
        assert self.retained.get(device.value, 0) > 0, "released a context that was not retained"
        self.retained[device.value] -= 1
        return 0

    def _context_device(self, ctx) -> int:
        assert isinstance(ctx, ctypes.c_void_p)
        device = ctx.value - 0x1000
        assert self.retained.get(device, 0) > 0, "made a context current that is not retained"
        return device

    def cuCtxSetCurrent(self, ctx):
        """cuda.h: replaces the top of the calling thread's context stack (or pushes onto an empty one)."""
        device = self._context_device(ctx)
        stack = self._stack()
        stack[-1:] = [device]
        return self._log("cuCtxSetCurrent", device)

    def cuCtxPushCurrent_v2(self, ctx):
        device = self._context_device(ctx)
        self._stack().append(device)
        return self._log("cuCtxPushCurrent", device)

    def cuCtxPopCurrent_v2(self, out):
        stack = self._stack()
        if not stack:
            return CUDA_ERROR_INVALID_CONTEXT
        device = stack.pop()
        _out(out).value = 0x1000 + device
        return self._log("cuCtxPopCurrent", device)

    def _needs_context(self):
        return 0 if self.current is not None else CUDA_ERROR_INVALID_CONTEXT

    def cuStreamCreate(self, out, flags):
        assert isinstance(flags, ctypes.c_uint)
        rc = self._needs_context() or self._log("cuStreamCreate", flags.value)
        if rc:
            return rc
        handle = 0x5000 + len(self.calls)
        self.streams.add(handle)
        self.queues[handle] = []
        self.stream_device[handle] = self.current
        _out(out).value = handle
        return 0

    def cuStreamSynchronize(self, stream):
        assert stream.value in self.streams
        rc = self._log("cuStreamSynchronize", stream.value)
        queue, self.queues[stream.value] = self.queues[stream.value], []
        for _, _, apply in queue:  # in stream order
            apply()
        return rc

    def cuStreamDestroy_v2(self, stream):
        self.streams.remove(stream.value)
        self.abandoned += [what for what, _, _ in self.queues.pop(stream.value)]
        return self._log("cuStreamDestroy", stream.value)

    def cuMemAlloc_v2(self, out, size):
        assert isinstance(size, ctypes.c_size_t) and size.value > 0
        rc = self._needs_context() or self._log("cuMemAlloc", size.value)
        if rc:
            return rc
        ptr = self.next_ptr
        self.next_ptr += (size.value + 255) // 256 * 256 + 256
        self.memory[ptr] = bytearray(size.value)
        self.owner[ptr] = self.current
        _out(out).value = ptr
        return 0

    def cuMemFree_v2(self, ptr):
        """Needs a current context (CUDA_ERROR_INVALID_CONTEXT without one: the leak of a __del__ on a thread
        that never made the context current). Stricter than a driver with unified addressing: the current context
        must be the one that allocated it. Freeing memory that queued work still uses is a bug."""
        assert isinstance(ptr, ctypes.c_uint64) and ptr.value in self.memory, "freed memory that is not allocated"
        self.frees.append((ptr.value, self.current, threading.current_thread().name))
        if self.current is None:
            return CUDA_ERROR_INVALID_CONTEXT
        if self.current != self.owner[ptr.value]:
            return CUDA_ERROR_INVALID_CONTEXT
        busy = [what for queue in self.queues.values() for what, ptrs, _ in queue if ptr.value in ptrs]
        assert not busy, f"freed device memory that queued work still uses: {busy}"
        del self.memory[ptr.value], self.owner[ptr.value]
        return self._log("cuMemFree", ptr.value)

    def cuMemcpyHtoDAsync_v2(self, dst, src, n, stream):
        assert isinstance(dst, ctypes.c_uint64) and isinstance(src, ctypes.c_void_p) and isinstance(n, ctypes.c_size_t)
        assert stream.value in self.streams
        rc = self._needs_context() or self._log("cuMemcpyHtoDAsync", dst.value, n.value)
        if not rc:
            self._find(dst.value, n.value)
            data = ctypes.string_at(src.value, n.value)  # staged now, lands at synchronisation
            self.enqueue(stream.value, "cuMemcpyHtoDAsync", [dst.value], lambda: self.write(dst.value, data))
        return rc

    def cuMemcpyDtoHAsync_v2(self, dst, src, n, stream):
        assert isinstance(dst, ctypes.c_void_p) and isinstance(src, ctypes.c_uint64) and isinstance(n, ctypes.c_size_t)
        assert stream.value in self.streams
        rc = self._needs_context() or self._log("cuMemcpyDtoHAsync", src.value, n.value)
        if not rc:
            self._find(src.value, n.value)
            self.enqueue(stream.value, "cuMemcpyDtoHAsync", [src.value],
                         lambda: ctypes.memmove(dst.value, self.read(src.value, n.value), n.value))
        return rc


# ----------------------------------------------------------------------------------------------------------------
# TensorRT

class _Enum:
    """A pybind11-like enum member: has .name, str() is 'Type.NAME' (or the bare name, for enums whose binding
    overrides __str__, as nvonnxparser's ErrorCode does: python/src/parsers/pyOnnx.cpp, errorCodeStr)."""

    def __init__(self, type_name, name, bare=False):
        self.name, self._type, self._bare = name, type_name, bare

    def __repr__(self):
        return self.name if self._bare else f"{self._type}.{self.name}"

    __str__ = __repr__


def _enum(type_name, *names, bare=False):
    return types.SimpleNamespace(**{n: _Enum(type_name, n, bare) for n in names})


def plan_bytes(num_classes=10, channels=3, profile=((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)), seed=0, dla=False,
               io="float32", inspector=None) -> bytes:
    """The bytes of a stand-in plan: what its engine computes and takes. `io`: the dtype of its input and output
    tensors ("float16": an engine built from an FP16-I/O ONNX file); `inspector`: the fixture its engine inspector
    answers with (see INSPECTOR_FIXTURES; default: the TensorRT 10 one, or the DLA one for a DLA plan)."""
    return b"FAKEPLAN" + json.dumps({"classes": num_classes, "channels": channels, "profile": profile, "seed": seed,
                                     "dla": dla, "io": io, "inspector": inspector}).encode()


def expected_logits(x: np.ndarray, num_classes=10, seed=0) -> np.ndarray:
    w = np.random.default_rng(seed).normal(size=(num_classes, x.shape[1])).astype(np.float32)
    return x.mean(axis=(2, 3)).astype(np.float32) @ w.T


class FakeTensorRT:
    """A `tensorrt` module as far as vanexport uses it. `driver` is the FakeDriver the engines run on."""

    def __init__(self, driver: FakeDriver, version="10.16.1.11", weak_typing=True, same_cc=True, dla_cores=0):
        self.driver = driver
        self.__version__ = version
        self.events: list[tuple] = []
        self.dla_cores = dla_cores
        self.fail_build = False  # True: the build fails; "execute": running a plan fails
        self.build_adds_timings = True
        self.plan_classes = 10  # the output width of the plans the builder makes
        self.dla_placement = True  # whether a DLA build really puts a subgraph on the DLA
        self.DataType = _enum("DataType", "FLOAT", "HALF", "INT8")
        # nvonnxparser's ErrorCode (pyOnnx.cpp, TensorRT 10.3 to 11.1): str() is the bare name
        self.ErrorCode = _enum("ErrorCode", "SUCCESS", "INTERNAL_ERROR", "MEM_ALLOC_FAILED",
                               "MODEL_DESERIALIZE_FAILED", "INVALID_VALUE", "INVALID_GRAPH", "INVALID_NODE",
                               "UNSUPPORTED_GRAPH", "UNSUPPORTED_NODE", "UNSUPPORTED_NODE_ATTR",
                               "UNSUPPORTED_NODE_INPUT", "UNSUPPORTED_NODE_DATATYPE", "UNSUPPORTED_NODE_DYNAMIC",
                               "UNSUPPORTED_NODE_SHAPE", "REFIT_FAILED", bare=True)
        self.parse_failure = None  # None, "unreadable", or a list of parser_error(...) dicts
        self.corrupt_cache = "none"  # what create_timing_cache returns for a corrupt blob: "none" or "empty"
        self.TensorIOMode = _enum("TensorIOMode", "INPUT", "OUTPUT")
        self.LayerInformationFormat = _enum("LayerInformationFormat", "ONELINE", "JSON")
        self.ProfilingVerbosity = _enum("ProfilingVerbosity", "LAYER_NAMES_ONLY", "DETAILED", "NONE")
        self.MemoryPoolType = _enum("MemoryPoolType", "WORKSPACE", "TACTIC_DRAM")
        self.DeviceType = _enum("DeviceType", "GPU", "DLA")
        flags = ["TF32", "VERSION_COMPATIBLE", "GPU_FALLBACK"] + (["FP16", "INT8"] if weak_typing else [])
        self.BuilderFlag = _enum("BuilderFlag", *flags)
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
        levels = ["NONE", "AMPERE_PLUS"] + (["SAME_COMPUTE_CAPABILITY"] if same_cc else [])
        self.HardwareCompatibilityLevel = _enum("HardwareCompatibilityLevel", *levels)
        fake = self

        class ILogger:
            Severity = _enum("Severity", "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")

            def __init__(self):
                fake.events.append(("ILogger.__init__",))

        class IProgressMonitor:
            def __init__(self):
                pass

        self.ILogger, self.IProgressMonitor = ILogger, IProgressMonitor
        self.Runtime = lambda logger: FakeRuntime(fake, logger)
        self.Builder = lambda logger: FakeBuilder(fake, logger)
        self.OnnxParser = lambda network, logger: FakeParser(fake, network, logger)

    def log(self, logger, severity, msg):
        logger.log(getattr(self.ILogger.Severity, severity), msg)


class FakeRuntime:
    def __init__(self, trt: FakeTensorRT, logger):
        self.trt, self.logger = trt, logger
        self.device = trt.driver.current
        self.DLA_core = -1
        self.engine_host_code_allowed = False
        trt.events.append(("Runtime", self.device))

    def __del__(self):
        self.trt.events.append(("del Runtime", self.trt.driver.current))

    def deserialize_cuda_engine(self, data: bytes):
        if not bytes(data).startswith(b"FAKEPLAN"):
            self.trt.log(self.logger, "ERROR", "1: [stdArchiveReader.cpp::StdArchiveReader::32] Magic tag mismatch")
            return None
        return FakeEngine(self.trt, json.loads(bytes(data)[8:]), self.device, self.logger)


class FakeEngine:
    def __init__(self, trt, spec, device, logger):
        self.trt, self.spec, self.device, self.logger = trt, spec, device, logger
        self.names = ["input", "logits"]
        self.num_io_tensors = 2

    def __del__(self):
        self.trt.events.append(("del Engine", self.trt.driver.current))

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if name == "input" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self.trt.DataType.HALF if self.spec.get("io") == "float16" else self.trt.DataType.FLOAT

    def get_tensor_shape(self, name):
        lo, _, hi = self.spec["profile"]
        if name == "input":
            return [a if a == b else -1 for a, b in zip(lo, hi)]
        return [-1 if lo[0] != hi[0] else lo[0], self.spec["classes"]]

    def get_tensor_profile_shape(self, name, profile):
        assert name == "input" and profile == 0
        return [tuple(s) for s in self.spec["profile"]]

    def create_execution_context(self):
        assert self.trt.driver.current == self.device, "a context made on another device"
        return FakeContext(self)

    def create_engine_inspector(self):
        return FakeInspector(self)


class FakeContext:
    def __init__(self, engine: FakeEngine):
        self.engine = engine
        self.shape = None
        self.addresses = {}

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.spec["profile"]
        if not all(a <= s <= b for s, a, b in zip(shape, lo, hi)) or len(shape) != len(lo):
            self.engine.trt.log(self.engine.logger, "ERROR", f"3: [executionContext.cpp::setInputShape] {name} "
                                "dimensions outside the profile")
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shape if name == "input" else (self.shape[0], self.engine.spec["classes"])

    def set_tensor_address(self, name, ptr):
        assert isinstance(ptr, int) and ptr >= BASE, f"not a device address: {ptr!r}"
        self.addresses[name] = ptr
        return True

    def __del__(self):
        self.engine.trt.events.append(("del Context", self.engine.trt.driver.current))

    def execute_async_v3(self, stream_handle):
        """Queues the network on the stream (addresses and shapes are taken now, as TensorRT's enqueue does); it
        reads the input and writes the output when the stream is synchronised."""
        driver = self.engine.trt.driver
        assert isinstance(stream_handle, int) and stream_handle in driver.streams
        assert driver.current == self.engine.device, "executed on another device than the engine's"
        if self.engine.trt.fail_build == "execute":
            self.engine.trt.log(self.engine.logger, "ERROR", "2: [executionContext.cpp::enqueueV3] illegal address")
            return False
        dtype = np.dtype(self.engine.spec.get("io") or "float32")
        shape, src, dst = self.shape, self.addresses["input"], self.addresses["logits"]
        classes, seed = self.engine.spec["classes"], self.engine.spec["seed"]

        def run():
            x = np.frombuffer(driver.read(src, int(np.prod(shape)) * dtype.itemsize), dtype).reshape(shape)
            y = expected_logits(x.astype(np.float32), classes, seed).astype(dtype)
            driver.write(dst, np.ascontiguousarray(y).tobytes())

        driver.enqueue(stream_handle, "execute_async_v3", [src, dst], run)
        return True


FIXTURES = Path(__file__).parent / "fixtures" / "tensorrt"
# IEngineInspector JSON, LayerInformationFormat.JSON, as TensorRT writes it for a VAN-like plan (input "input",
# output "logits", opt batch 4). Written here (no NVIDIA file is copied), each after a real output of TensorRT:
INSPECTOR_FIXTURES = {
    # TensorRT 10: keys and value spellings of the engine graph JSON from a real build kept in NVIDIA/TensorRT
    # (release/10.16, tools/experimental/trt-engine-explorer/examples/pytorch/resnet/A100/fp16/
    # resnet.onnx.engine.graph.json): tensors with Name/Location/Dimensions/"Format/Datatype" ("Row major linear
    # FP32", "Channel major FP16 format where channel % 8 == 0"), layers with ParameterType, TacticName, TacticValue.
    "trt10": "inspector_trt10.json",
    # TensorRT 11: the tensor keys of the TensorRT 11.1 OSS layer-info schema (NVIDIA/TensorRT main,
    # .agents/skills/trt-perf-analysis/schemas/analyze-data.schema.json: Datatype, Format, Dimensions, StrideOrder,
    # Strides; layers with TacticName, StreamId, Metadata) and Myelin layer names as printed by
    # samples/sampleEditableTimingCache/README.md (11.1). The value "Float" is from that README; "Half" is
    # TensorRT's name of DataType.HALF (the "Type" of FP16 weights in the 10.x file above): UNVERIFIED as a
    # Datatype value of 11.
    "trt11": "inspector_trt11.json",
    # Built without ProfilingVerbosity.DETAILED: names only, as trtexec of TensorRT 10.1 wrote it
    # (NVIDIA/TensorRT#4020, nvcr.io/nvidia/tensorrt:24.06-py3).
    "names": "inspector_names_only.json",
    # A DLA build: the layer names of a real Jetson build's per-layer table (NVIDIA/TensorRT#3143: "images to nvm",
    # "{ForeignNode[Conv_0...Concat_198]}", "head_3 from nvm", "images copy finish"). The JSON LayerType of the
    # DLA subgraph is not documented anywhere we could read: left out (UNVERIFIED).
    "dla": "inspector_dla.json",
}


def inspector_json(name: str) -> dict:
    return json.loads((FIXTURES / INSPECTOR_FIXTURES[name]).read_text())


def without_context(info: dict) -> dict:
    """What the inspector shows without an execution context whose inputs are set (include/NvInferRuntime.h,
    IEngineInspector::setExecutionContext, TensorRT 11.1): "values dependent on input shapes will be displayed as
    -1 and format information will not be shown" (here: the batch axis, and the format/datatype keys)."""
    info = json.loads(json.dumps(info))
    for layer in info["Layers"]:
        if isinstance(layer, str):
            continue
        for tensor in layer.get("Inputs", []) + layer.get("Outputs", []):
            for key in ("Format/Datatype", "Datatype", "Format", "StrideOrder", "Strides"):
                tensor.pop(key, None)
            if tensor.get("Dimensions"):
                tensor["Dimensions"] = [-1, *tensor["Dimensions"][1:]]
    return info


class FakeInspector:
    """Answers with a fixture (INSPECTOR_FIXTURES); formats (and so precisions) only when an execution context
    with input shapes is attached, as the real inspector does for dynamic shapes."""

    def __init__(self, engine):
        self.engine = engine
        self.execution_context = None

    def get_engine_information(self, fmt):
        assert fmt is self.engine.trt.LayerInformationFormat.JSON
        spec = self.engine.spec
        info = inspector_json(spec.get("inspector") or ("dla" if spec["dla"] else "trt10"))
        ctx = self.execution_context
        dynamic = list(spec["profile"][0]) != list(spec["profile"][2])
        if dynamic and (ctx is None or ctx.shape is None):
            info = without_context(info)
        return json.dumps(info)


class FakeBuilder:
    def __init__(self, trt: FakeTensorRT, logger):
        self.trt, self.logger = trt, logger
        self.device = trt.driver.current
        trt.events.append(("Builder", self.device))
        self.num_DLA_cores = trt.dla_cores

    def create_network(self, flags):
        self.trt.events.append(("create_network", flags))
        return FakeNetwork()

    def create_optimization_profile(self):
        return FakeProfile()

    def create_builder_config(self):
        return FakeConfig(self.trt, self.logger)

    def build_serialized_network(self, network, config):
        assert self.trt.driver.current == self.device, "built on another device than the builder's"
        self.trt.events.append(("build", config.record()))
        if self.trt.fail_build is True:
            self.trt.log(self.logger, "ERROR", "10: Could not find any implementation for node /head/Gemm")
            return None
        monitor = config.progress_monitor
        if monitor is not None:  # what TensorRT reports: top-level phases (parent None) and their steps
            monitor.phase_start("Building engine", None, 2)
            monitor.phase_start("Tactic selection", "Building engine", 1)
            assert monitor.step_complete("Building engine", 0) is True
            monitor.phase_finish("Tactic selection")
            monitor.phase_finish("Building engine")
        if config.cache is not None and self.trt.build_adds_timings:
            config.cache.keys.append(f"tactic-{len(config.cache.keys)}")
        (lo, opt, hi) = config.profiles[0]["input"]
        dla = config.default_device_type is self.trt.DeviceType.DLA and self.trt.dla_placement
        return plan_bytes(num_classes=self.trt.plan_classes, profile=(lo, opt, hi), dla=dla)


class FakeNetwork:
    num_layers = 3

    def get_layer(self, i):
        return f"layer{i}"


def parser_error(node=-1, node_name="", node_operator="", desc="", code="UNSUPPORTED_NODE",
                 file="onnxOpImporters.cpp", line=6448, func="importFallbackPluginImporter") -> dict:
    """One nvonnxparser error (onnx-tensorrt Status.hpp: node -1 and empty names for model-level errors).
    The default desc is what an op with no importer and no plugin gives (onnxOpImporters.cpp,
    FallbackPluginImporter: ASSERT_NODE(creator, "Plugin not found, ...") in onnx-tensorrt 10.1)."""
    desc = desc or ('Assertion failed: creator && "Plugin not found, are the plugin name, version, and namespace '
                    'correct?": Plugin not found, are the plugin name, version, and namespace correct?')
    return dict(node=node, node_name=node_name, node_operator=node_operator, desc=desc, code=code, file=file,
                line=line, func=func)


class FakeParserError:
    """nvonnxparser.IParserError as bound in python/src/parsers/pyOnnx.cpp (TensorRT 10.3 to 11.1; every accessor
    is a method, checked with trt-api in 10.16.1.11 and 11.4.0.106), str() as parserErrorStr writes it."""

    def __init__(self, trt, e: dict):
        self._e, self._code = e, getattr(trt.ErrorCode, e["code"])

    def code(self):
        return self._code

    def desc(self):
        return self._e["desc"]

    def file(self):
        return self._e["file"]

    def line(self):
        return self._e["line"]

    def func(self):
        return self._e["func"]

    def node(self):
        return self._e["node"]

    def node_name(self):
        return self._e["node_name"]

    def node_operator(self):
        return self._e["node_operator"]

    def local_function_stack(self):
        return []

    def local_function_stack_size(self):
        return 0

    def __str__(self):
        info = f"({self.func()}): {self._code}: {self.desc()}"
        if self._code.name in ("MODEL_DESERIALIZE_FAILED", "REFIT_FAILED"):
            return info
        return f"In node {self.node()} with name: {self.node_name()} and operator: {self.node_operator()} {info}"

    __repr__ = __str__


class FakeParser:
    """trt.OnnxParser. `trt.parse_failure`: None (parses), "unreadable" (not an ONNX file: onnx-tensorrt's
    ModelImporter::parseFromFile logs "Failed to parse ONNX model from file: PATH!" and returns false with no
    parser error recorded), or a list of parser_error(...) dicts (returns false; each error is also logged as
    ModelImporter::parseFromFile does, "While parsing node number N ..." and "ERROR: file:line In function ...")."""

    def __init__(self, trt, network, logger):
        self.trt, self.logger = trt, logger
        self._errors = []

    @property
    def num_errors(self):  # def_property_readonly in pyOnnx.cpp
        return len(self._errors)

    def get_error(self, index):
        return FakeParserError(self.trt, self._errors[index])

    def clear_errors(self):
        self._errors = []

    def parse_from_file(self, path):
        failure = self.trt.parse_failure
        if failure == "unreadable":
            self.trt.log(self.logger, "ERROR", f"Failed to parse ONNX model from file: {path}!")
            return False
        for e in failure or []:
            self._errors.append(e)
            if e["node"] != -1:
                self.trt.log(self.logger, "ERROR", f"While parsing node number {e['node']} [{e['node_operator']} -> "
                             f'"{e["node_name"]}_output_0"]:')
            self.trt.log(self.logger, "ERROR", f"ERROR: {e['file']}:{e['line']} In function {e['func']}:\n"
                         f"[{list(vars(self.trt.ErrorCode)).index(e['code'])}] {e['desc']}")
        return not self._errors


class FakeProfile(dict):
    def set_shape(self, name, lo, opt, hi):
        self[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeCache:
    """A timing cache: which device (compute capability) and TensorRT version made it, and its keys."""

    def __init__(self, made_for: str, keys=None):
        self.made_for, self.keys = made_for, list(keys or [])

    def serialize(self):
        return json.dumps({"for": self.made_for, "keys": self.keys}).encode()

    def queryKeys(self):
        return list(self.keys)


class FakeConfig:
    dla_runnable = 3  # how many of the network's layers can_run_on_DLA says yes to

    def __init__(self, trt: FakeTensorRT, logger):
        self.trt, self.logger = trt, logger
        self.flags = {"TF32"}  # TensorRT's default
        self.profiles = []
        self.pools = {}
        self.cache = None
        self.profiling_verbosity = None
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = trt.HardwareCompatibilityLevel.NONE
        self.progress_monitor = None
        self.default_device_type = trt.DeviceType.GPU
        self.DLA_core = -1

    def here(self) -> str:
        d = self.trt.driver.devices[self.trt.driver.current]
        return f"trt{self.trt.__version__}-sm{d['cc']}"

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_flag(self, flag):
        self.flags.add(flag.name)

    def clear_flag(self, flag):
        self.flags.discard(flag.name)

    def set_memory_pool_limit(self, pool, size):
        self.pools[pool.name] = size

    def can_run_on_DLA(self, layer):
        return int(layer[-1]) < self.dla_runnable

    def create_timing_cache(self, data):
        """A blob TensorRT cannot read: the two errors a real TensorRT 8.6.1.6 logged for one (NVIDIA/TensorRT#3566),
        then None (what NVIDIA's own caller expects: shared/utils/cacheUtils.cpp, buildTimingCacheFromFile, TensorRT
        11.1 OSS, treats nullptr as the failure) or, with `trt.corrupt_cache = "empty"`, a new empty cache ("The
        timing cache will not be used!" suggests a cache object may still come back: which one is UNVERIFIED)."""
        data = bytes(data)
        if not data:
            return FakeCache(self.here())
        try:
            d = json.loads(data)
        except ValueError:
            self.trt.log(self.logger, "ERROR", "1: [stdArchiveReader.cpp::nvinfer1::rt::StdArchiveReader::"
                         "StdArchiveReaderInitCommon::36] Error Code 1: Serialization (Serialization assertion "
                         "magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
            self.trt.log(self.logger, "ERROR", "4: The timing cache will not be used!")
            return None if self.trt.corrupt_cache == "none" else FakeCache(self.here())
        return FakeCache(d["for"], d["keys"])

    def set_timing_cache(self, cache, ignore_mismatch):
        """False for a cache made on another device or TensorRT unless ignore_mismatch (IBuilderConfig::
        setTimingCache, include/NvInfer.h: "ignoreMismatch whether or not allow using a cache that contains
        different CUDA device property")."""
        if cache.made_for != self.here() and not ignore_mismatch:
            return False
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache

    def record(self) -> dict:
        return {"flags": sorted(self.flags), "pools": dict(self.pools), "profile": self.profiles[0]["input"],
                "opt_level": self.builder_optimization_level, "hw": self.hardware_compatibility_level.name,
                "verbosity": self.profiling_verbosity.name if self.profiling_verbosity else None,
                "device_type": self.default_device_type.name, "dla_core": self.DLA_core,
                "monitor": self.progress_monitor is not None,
                "cache_keys": list(self.cache.keys) if self.cache else None}
