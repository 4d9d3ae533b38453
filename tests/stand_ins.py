"""Stand-ins for the CUDA driver (libcuda) and TensorRT, for the CPU tests of everything around them.

They answer like the real ones as far as vanexport's calls go, and are strict where the real ones would silently
misbehave: device addresses are above 4 GiB (a pointer passed as a 32-bit int is caught), every call checks the C
types of its arguments, memory calls need a current context, and a plan runs only on the device that loaded it.
The "network" of a plan is tiny and known (logits = a fixed matrix times the per-channel means of the input), so
results can be checked exactly. Names and signatures follow TensorRT 10.16 / 11.4 and cuda.h.
"""
from __future__ import annotations

import ctypes
import json
import threading
import types

import numpy as np

CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_INVALID_CONTEXT = 1, 2, 201
ERROR_NAMES = {1: b"CUDA_ERROR_INVALID_VALUE", 2: b"CUDA_ERROR_OUT_OF_MEMORY", 201: b"CUDA_ERROR_INVALID_CONTEXT",
               999: b"CUDA_ERROR_UNKNOWN"}
BASE = 0x7F00_0000_0000  # device addresses above 4 GiB


def _out(arg):
    """The ctypes object behind byref(...)."""
    return arg._obj


class FakeDriver:
    """libcuda: `devices` is a list of dicts (name, cc "8.6", integrated, memory)."""

    def __init__(self, devices=None, init_result=0, version=12040):
        self.devices = devices or [{"name": "NVIDIA A10", "cc": "8.6", "integrated": False, "memory": 24 * 2**30}]
        self.init_result, self.version = init_result, version
        self.retained = {}  # device -> primary context refcount
        self.local = threading.local()  # the current context is per thread, as in CUDA
        self.memory: dict[int, bytearray] = {}
        self.next_ptr = BASE
        self.streams: set[int] = set()
        self.calls: list[tuple] = []
        self.fail: dict[str, int] = {}  # function name -> CUresult to return instead

    # helpers for the tests and the TensorRT stand-in
    @property
    def current(self):
        return getattr(self.local, "device", None)

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

    def cuCtxSetCurrent(self, ctx):
        assert isinstance(ctx, ctypes.c_void_p)
        device = ctx.value - 0x1000
        assert self.retained.get(device, 0) > 0, "made a context current that is not retained"
        self.local.device = device
        return self._log("cuCtxSetCurrent", device)

    def _needs_context(self):
        return 0 if self.current is not None else CUDA_ERROR_INVALID_CONTEXT

    def cuStreamCreate(self, out, flags):
        assert isinstance(flags, ctypes.c_uint)
        rc = self._needs_context() or self._log("cuStreamCreate", flags.value)
        if rc:
            return rc
        handle = 0x5000 + len(self.calls)
        self.streams.add(handle)
        _out(out).value = handle
        return 0

    def cuStreamSynchronize(self, stream):
        assert stream.value in self.streams
        return self._log("cuStreamSynchronize", stream.value)

    def cuStreamDestroy_v2(self, stream):
        self.streams.remove(stream.value)
        return self._log("cuStreamDestroy", stream.value)

    def cuMemAlloc_v2(self, out, size):
        assert isinstance(size, ctypes.c_size_t) and size.value > 0
        rc = self._needs_context() or self._log("cuMemAlloc", size.value)
        if rc:
            return rc
        ptr = self.next_ptr
        self.next_ptr += (size.value + 255) // 256 * 256 + 256
        self.memory[ptr] = bytearray(size.value)
        _out(out).value = ptr
        return 0

    def cuMemFree_v2(self, ptr):
        assert isinstance(ptr, ctypes.c_uint64) and ptr.value in self.memory, "freed memory that is not allocated"
        del self.memory[ptr.value]
        return self._log("cuMemFree", ptr.value)

    def cuMemcpyHtoDAsync_v2(self, dst, src, n, stream):
        assert isinstance(dst, ctypes.c_uint64) and isinstance(src, ctypes.c_void_p) and isinstance(n, ctypes.c_size_t)
        assert stream.value in self.streams
        rc = self._needs_context() or self._log("cuMemcpyHtoDAsync", dst.value, n.value)
        if not rc:
            self.write(dst.value, ctypes.string_at(src.value, n.value))
        return rc

    def cuMemcpyDtoHAsync_v2(self, dst, src, n, stream):
        assert isinstance(dst, ctypes.c_void_p) and isinstance(src, ctypes.c_uint64) and isinstance(n, ctypes.c_size_t)
        assert stream.value in self.streams
        rc = self._needs_context() or self._log("cuMemcpyDtoHAsync", src.value, n.value)
        if not rc:
            ctypes.memmove(dst.value, self.read(src.value, n.value), n.value)
        return rc


# ----------------------------------------------------------------------------------------------------------------
# TensorRT

class _Enum:
    """A pybind11-like enum member: has .name, str() is 'Type.NAME'."""

    def __init__(self, type_name, name):
        self.name, self._type = name, type_name

    def __repr__(self):
        return f"{self._type}.{self.name}"

    __str__ = __repr__


def _enum(type_name, *names):
    return types.SimpleNamespace(**{n: _Enum(type_name, n) for n in names})


def plan_bytes(num_classes=10, channels=3, profile=((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)), seed=0, dla=False,
               layers=None) -> bytes:
    """The bytes of a stand-in plan: what its engine computes and takes."""
    return b"FAKEPLAN" + json.dumps({"classes": num_classes, "channels": channels, "profile": profile, "seed": seed,
                                     "dla": dla, "layers": layers}).encode()


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
        self.dla_placement = True  # whether a DLA build really puts a subgraph on the DLA
        self.DataType = _enum("DataType", "FLOAT", "HALF", "INT8")
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
        self.OnnxParser = lambda network, logger: FakeParser(network, logger)

    def log(self, logger, severity, msg):
        logger.log(getattr(self.ILogger.Severity, severity), msg)


class FakeRuntime:
    def __init__(self, trt: FakeTensorRT, logger):
        self.trt, self.logger = trt, logger
        self.device = trt.driver.current
        self.DLA_core = -1
        self.engine_host_code_allowed = False
        trt.events.append(("Runtime", self.device))

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

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if name == "input" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self.trt.DataType.FLOAT

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

    def execute_async_v3(self, stream_handle):
        driver = self.engine.trt.driver
        assert isinstance(stream_handle, int) and stream_handle in driver.streams
        assert driver.current == self.engine.device, "executed on another device than the engine's"
        if self.engine.trt.fail_build == "execute":
            self.engine.trt.log(self.engine.logger, "ERROR", "2: [executionContext.cpp::enqueueV3] illegal address")
            return False
        n = int(np.prod(self.shape)) * 4
        x = np.frombuffer(driver.read(self.addresses["input"], n), np.float32).reshape(self.shape)
        y = expected_logits(x, self.engine.spec["classes"], self.engine.spec["seed"])
        driver.write(self.addresses["logits"], np.ascontiguousarray(y).tobytes())
        return True


class FakeInspector:
    """Formats (and so precisions) only when an execution context with input shapes is attached, as the real
    inspector does for dynamic shapes."""

    def __init__(self, engine):
        self.engine = engine
        self.execution_context = None

    def get_engine_information(self, fmt):
        ctx = self.execution_context
        known = ctx is not None and ctx.shape is not None
        layers = self.engine.spec.get("layers") or (
            [{"Name": "{ForeignNode[/stem/Conv.../head/Gemm]}", "LayerType": "DLA"}] if self.engine.spec["dla"]
            else [{"Name": "/stem/Conv", "LayerType": "CaskConvolution"}, {"Name": "/head/Gemm", "LayerType": "Gemm"}])
        for layer in layers:
            layer["Outputs"] = [{"Name": "t", "Format/Datatype": "Row major linear FP16 format"}] if known else \
                [{"Name": "t", "Dimensions": [-1, 10]}]
        return json.dumps({"Layers": layers, "Bindings": ["input", "logits"]})


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
        return plan_bytes(profile=(lo, opt, hi), dla=dla)


class FakeNetwork:
    num_layers = 3

    def get_layer(self, i):
        return f"layer{i}"


class FakeParser:
    def __init__(self, network, logger):
        self.num_errors = 0

    def parse_from_file(self, path):
        return True


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
        data = bytes(data)
        if not data:
            return FakeCache(self.here())
        try:
            d = json.loads(data)
        except ValueError:
            self.trt.log(self.logger, "ERROR", "1: Serialization assertion magicTagRead == kMAGIC_TAG "
                         "failed.Magic tag does not match")
            return None
        return FakeCache(d["for"], d["keys"])

    def set_timing_cache(self, cache, ignore_mismatch):
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
