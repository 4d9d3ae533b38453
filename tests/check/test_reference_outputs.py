"""The PyTorch reference runs once per weights and batch: a chain's checks share its outputs."""
import numpy as np
import pytest
import torch

from vanexport.check.compare import ReferenceOutputs
from vanexport.check.validate import validate
from vanexport.runtime.torch_backend import TorchBackend


class Counting(TorchBackend):
    calls = 0

    def __call__(self, x):
        Counting.calls += 1
        return super().__call__(x)


@pytest.fixture
def fresh():
    ReferenceOutputs.forget()
    Counting.calls = 0
    yield
    ReferenceOutputs.forget()


def batch(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 3, 64, 64)).astype(np.float32)


def test_a_batch_seen_before_is_not_run_again(b0, fresh):
    model, _ = b0
    first = ReferenceOutputs(Counting(model))(batch(0))
    again = ReferenceOutputs(Counting(model))(batch(0))  # another check, the same weights and inputs
    assert Counting.calls == 1 and again is first and not again.flags.writeable
    np.testing.assert_array_equal(first, TorchBackend(model)(batch(0)))
    other = ReferenceOutputs(Counting(model))(batch(1))
    assert Counting.calls == 2 and not np.array_equal(other, first)


def test_weights_changed_in_place_are_run_again(b0, fresh):
    model, state = b0
    before = ReferenceOutputs(Counting(model))(batch(0))
    try:
        with torch.no_grad():
            model.head.weight.mul_(-1)  # the same object, other weights
        after = ReferenceOutputs(Counting(model))(batch(0))
    finally:
        model.load_state_dict(state)
    assert Counting.calls == 2 and not np.allclose(after, before)


def test_the_oldest_outputs_go_past_the_limit(b0, fresh, monkeypatch):
    model, _ = b0
    monkeypatch.setattr(ReferenceOutputs, "LIMIT_BYTES", 2 * 2 * 1000 * 4)  # two batches of 2 x 1000 logits
    ref = ReferenceOutputs(Counting(model))
    for seed in (0, 1, 0, 2, 1):  # 0 is used again, so 1 is the oldest when 2 arrives
        ref(batch(seed))
    assert Counting.calls == 4 and ReferenceOutputs._kept_bytes <= ReferenceOutputs.LIMIT_BYTES


def test_checking_a_second_file_on_the_same_inputs_runs_no_pytorch(b0_onnx_64, fresh, monkeypatch, tmp_path):
    """`validate` twice (as a chain's FP32 and FP16 checks do, on the same check inputs): PyTorch runs the first
    time only, and the reports agree."""
    import vanexport.runtime.torch_backend as torch_backend

    monkeypatch.setattr(torch_backend, "TorchBackend", Counting)
    first = validate(b0_onnx_64)
    runs = Counting.calls
    second = validate(b0_onnx_64)
    assert runs > 0 and Counting.calls == runs
    assert second.overall == first.overall and second.passed
