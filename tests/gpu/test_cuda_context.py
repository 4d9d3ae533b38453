"""The CUDA wrapper's context push/pop (Device.pushed, what TensorRTBackend.close uses) on a real GPU: memory made
on one thread is freed from a thread that never made a context current, and that thread is left as it was.
(tests/runtime/test_cuda.py checks the same against the stand-in driver; NOT YET RUN on a GPU: no machine was lent
when it was written.)"""
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


def test_memory_is_freed_from_a_thread_without_a_context_inside_pushed():
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
