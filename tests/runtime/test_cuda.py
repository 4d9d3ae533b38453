"""The CUDA driver API wrapper (runtime/cuda.py) against a stand-in libcuda that checks every argument's C type and
keeps device memory, contexts and streams as the driver would."""
import ctypes
import threading

import numpy as np
import pytest
from stand_ins import BASE, CUDA_ERROR_OUT_OF_MEMORY, FakeDriver

from vanexport import machine
from vanexport.errors import VanexportError
from vanexport.runtime import cuda


@pytest.fixture
def driver(monkeypatch):
    d = FakeDriver([{"name": "NVIDIA A10", "cc": "8.6"}, {"name": "NVIDIA L4", "cc": "8.9"}])
    monkeypatch.setattr(machine, "_load_libcuda", lambda: d)
    return d


def test_the_device_primary_context_is_made_current_and_released(driver):
    dev = cuda.Device(1)
    assert driver.retained == {1: 1} and driver.current == 1  # what cudaSetDevice(1) does
    dev.close()
    dev.close()  # once only
    assert driver.retained == {1: 0}
    with pytest.raises(VanexportError, match="was closed"):
        dev.activate()


def test_a_device_that_does_not_exist(driver):
    with pytest.raises(VanexportError, match=r"no CUDA device 2 \(2 visible\)"):
        cuda.Device(2)


def test_memory_round_trip_through_a_stream(driver):
    with cuda.Device(0) as dev:
        stream = dev.stream()
        x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        buf = dev.alloc(x.nbytes)
        assert buf.ptr >= BASE  # a 64-bit address survives (no 32-bit truncation on the way)
        buf.copy_from(x, stream)
        y = np.empty_like(x)
        buf.copy_to(y, stream)
        stream.synchronize()
        np.testing.assert_array_equal(x, y)
        assert isinstance(stream.handle, int) and stream.handle in driver.streams
        with pytest.raises(ValueError, match="does not fit"):
            buf.copy_from(np.zeros(100, np.float32), stream)
        with pytest.raises(ValueError, match="contiguous: False"):
            buf.copy_to(np.zeros((4, 6), np.float32)[:, :3], stream)
        buf.close()
        buf.close()
        stream.close()
        assert not driver.memory and not driver.streams


def test_driver_failures_are_one_line_errors_with_the_driver_name(driver):
    with cuda.Device(0) as dev:
        driver.fail["cuMemAlloc"] = CUDA_ERROR_OUT_OF_MEMORY
        with pytest.raises(VanexportError, match=r"CUDA cuMemAlloc \(1048576 bytes\) failed \(CUDA_ERROR_OUT_OF_MEMORY\)"):
            dev.alloc(2**20)


def test_memory_calls_need_the_context_current_on_this_thread(driver):
    dev = cuda.Device(0)
    stream = dev.stream()
    errors = []

    def other_thread():
        try:
            dev.alloc(16)
        except VanexportError as e:
            errors.append(str(e))
        dev.activate()  # what the TensorRT backend does on a thread that did not load the plan
        dev.alloc(16).close()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert errors and "CUDA_ERROR_INVALID_CONTEXT" in errors[0]
    stream.close()
    dev.close()


def test_prototypes_are_declared_on_the_real_library(monkeypatch):
    """On a ctypes.CDLL (here: a stand-in subclass that has the functions), argtypes are set so Python ints pass
    as 64-bit pointers even without explicit ctypes values."""

    class Lib(ctypes.CDLL):
        def __init__(self):
            self._fns = {}

        def __getattr__(self, name):
            fn = self._fns.setdefault(name, type("Fn", (), {})())
            return fn

    lib = Lib()
    cuda.declare(lib)
    assert lib.cuMemAlloc_v2.argtypes == [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
    assert lib.cuMemcpyHtoDAsync_v2.argtypes[0] is ctypes.c_uint64 and lib.cuStreamCreate.restype is ctypes.c_int


def test_copies_land_only_when_the_stream_is_synchronised(driver):
    """The stand-in driver is as asynchronous as CUDA allows (its docstring says where that is read): the host
    array is written at cuStreamSynchronize, not at the Async call."""
    with cuda.Device(0) as dev:
        stream = dev.stream()
        x = np.arange(6, dtype=np.float32)
        buf = dev.alloc(x.nbytes)
        buf.copy_from(x, stream)
        y = np.full_like(x, -1)
        buf.copy_to(y, stream)
        assert driver.pending() == ["cuMemcpyHtoDAsync", "cuMemcpyDtoHAsync"]
        np.testing.assert_array_equal(y, -1)  # nothing has happened yet
        stream.synchronize()
        np.testing.assert_array_equal(y, x)
        assert not driver.pending()
        buf.close()
        stream.close()


def test_freeing_memory_that_queued_work_uses_is_caught(driver):
    with cuda.Device(0) as dev:
        stream = dev.stream()
        buf = dev.alloc(16)
        ptr = buf.ptr
        buf.copy_to(np.empty(4, np.float32), stream)
        with pytest.raises(AssertionError, match="queued work still uses"):
            buf.close()
        stream.synchronize()
        assert driver.cuMemFree_v2(ctypes.c_uint64(ptr)) == 0  # once the work is done
        stream.close()


def test_pushed_makes_the_context_current_for_the_block_and_restores_the_callers(driver):
    first, second = cuda.Device(0), cuda.Device(1)
    assert driver.current == 1
    with first.pushed():
        assert driver.current == 0
        first.alloc(16).close()  # freed in device 0's context
    assert driver.current == 1  # the caller's context is back

    seen = []

    def bare_thread():  # no context current here
        seen.append(driver.current)
        with second.pushed():
            seen.append(driver.current)
            second.alloc(16).close()
        seen.append(driver.current)

    t = threading.Thread(target=bare_thread)
    t.start()
    t.join()
    assert seen == [None, 1, None]
    assert [dev for _, dev, _ in driver.frees] == [0, 1] and not driver.memory
    first.close()
    with pytest.raises(VanexportError, match="was closed"):
        with first.pushed():
            pass
    second.close()
