"""The CUDA driver API wrapper (runtime/cuda.py) and the GPU facts of machine.py on a real NVIDIA GPU: what the
TensorRT backend stands on, checked without TensorRT (tests/runtime/test_cuda.py checks the same code against a
stand-in driver on every machine).

Run with `make test-gpu` or `pytest -m gpu -rs tests/gpu`; skipped, with vanexport's own one-line reason, where
there is no NVIDIA driver or no GPU.
"""
import threading

import numpy as np
import pytest

from vanexport import machine
from vanexport.errors import VanexportError
from vanexport.runtime import cuda


def _what_is_missing() -> str | None:
    try:
        machine.cuda_gpu(0)
    except VanexportError as e:
        return str(e)
    return None


MISSING = _what_is_missing()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(MISSING is not None, reason=f"needs a CUDA GPU: {MISSING}")]


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch here has no CUDA")
    return torch


def test_the_driver_reports_what_pytorch_sees():
    torch = _torch_cuda()
    found = machine.gpus()
    assert len(found) == torch.cuda.device_count()
    for g in found:
        props = torch.cuda.get_device_properties(g["index"])
        assert g["name"] == props.name
        assert g["compute_capability"] == f"{props.major}.{props.minor}"
        assert g["integrated"] == bool(props.is_integrated)
        assert abs(g["memory_gib"] - props.total_memory / 2**30) < 0.1


@pytest.mark.parametrize("nbytes", [4, 4096, 64 << 20])
def test_bytes_survive_a_round_trip_through_device_memory(nbytes):
    x = np.random.default_rng(nbytes).integers(0, 256, nbytes, dtype=np.uint8)
    with cuda.Device(0) as dev:
        stream = dev.stream()
        buf = dev.alloc(nbytes)
        buf.copy_from(x, stream)
        y = np.zeros_like(x)
        buf.copy_to(y, stream)
        stream.synchronize()
        np.testing.assert_array_equal(x, y)
        assert buf.ptr != 0 and stream.handle != 0
        buf.close()
        stream.close()


def test_another_thread_makes_the_context_current_and_copies():
    x = np.arange(1 << 16, dtype=np.float32)
    y = np.zeros_like(x)
    errors = []
    with cuda.Device(0) as dev:
        buf = dev.alloc(x.nbytes)

        def work():  # a fresh thread has no current context until activate()
            try:
                dev.activate()
                stream = dev.stream()
                buf.copy_from(x, stream)
                buf.copy_to(y, stream)
                stream.synchronize()
                stream.close()
            except Exception as e:  # reported below, on the test's thread
                errors.append(e)

        t = threading.Thread(target=work)
        t.start()
        t.join()
        buf.close()
    assert not errors
    np.testing.assert_array_equal(x, y)


def test_out_of_memory_is_one_line_naming_the_driver_error():
    with cuda.Device(0) as dev:
        with pytest.raises(VanexportError, match=r"cuMemAlloc \(\d+ bytes\) failed \(CUDA_ERROR_OUT_OF_MEMORY\)"):
            dev.alloc(1 << 50)  # a PiB
        buf = dev.alloc(1024)  # the failure left the context usable
        buf.close()


def test_a_device_past_the_last_one_is_refused():
    count = len(machine.gpus())
    with pytest.raises(VanexportError, match=rf"no CUDA device {count} \({count} visible\)"):
        cuda.Device(count)


def test_pytorch_keeps_working_after_the_wrapper_releases_the_shared_primary_context():
    torch = _torch_cuda()
    a = torch.arange(8, device="cuda:0", dtype=torch.float32)
    with cuda.Device(0) as dev:
        stream = dev.stream()
        x = np.full(8, 3.0, np.float32)
        buf = dev.alloc(x.nbytes)
        buf.copy_from(x, stream)
        stream.synchronize()
        buf.close()
        stream.close()
    b = a * 2 + 1  # the primary context is reference counted: releasing ours leaves PyTorch's alive
    assert b.cpu().tolist() == [2 * i + 1 for i in range(8)]


def test_memory_is_freed_from_a_thread_without_a_context_inside_pushed():
    """Device.pushed (what TensorRTBackend.close uses): memory made on one thread is freed from a thread that never
    made a context current, and that thread is left as it was. NOT YET RUN on a GPU (none was lent)."""
    dev = cuda.Device(0)
    stream = dev.stream()
    buf = dev.alloc(1 << 20)
    x = np.arange(1 << 18, dtype=np.float32)
    buf.copy_from(x, stream)
    stream.synchronize()
    outcome = []

    def other_thread():
        try:
            with dev.pushed():
                buf.close()
                stream.close()
            outcome.append("freed")
            dev.alloc(16)  # popped: no context is current here any more
        except VanexportError as e:
            outcome.append(e.problem)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert outcome[0] == "freed" and "CUDA_ERROR_INVALID_CONTEXT" in outcome[1]
    dev.close()
