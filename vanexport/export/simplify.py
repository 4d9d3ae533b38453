"""onnxsim, trusted only when it keeps the outputs: otherwise the original graph is kept, with a warning."""
from __future__ import annotations

import warnings

import numpy as np

# onnxsim's fuse_preceding_mul_into_conv folds the MLP GELU's final "* 0.5" into fc2, which hides the Erf pattern
# from ONNX Runtime's GeluFusion: half of VAN's 26 GELUs then ran as Div/Erf/Add/Mul, and b0 ran 1.2x slower on
# the CPU (docs/benchmarks.md). Nothing else in onnxsim costs speed.
SKIPPED_OPTIMIZERS = ["fuse_preceding_mul_into_conv"]


def simplify(model_proto, check_inputs: list[dict[str, np.ndarray]], atol: float = 1e-5):
    """Return (model, note). `note` is None when the simplified graph was kept, else why it was not."""
    try:
        import onnxsim
        simplified, ok = onnxsim.simplify(model_proto, check_n=0, skipped_optimizers=SKIPPED_OPTIMIZERS)
    except Exception as e:  # onnxsim raises plain RuntimeErrors from C++; any failure means "keep the original"
        return model_proto, _warn(f"onnxsim failed ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})")
    if not ok:
        return model_proto, _warn("onnxsim could not check its result")
    diff = _max_output_diff(model_proto, simplified, check_inputs)
    if not diff <= atol:
        return model_proto, _warn(f"onnxsim changed the outputs (max abs diff {diff:.2e} > {atol:.0e})")
    return simplified, None


def _max_output_diff(a, b, inputs) -> float:
    from ..runtime.onnxruntime_backend import make_session

    sa, sb = make_session(a, spinning=False), make_session(b, spinning=False)  # two pools alive: let idle ones sleep
    return max(float(np.abs(sa.run(None, feed)[0] - sb.run(None, feed)[0]).max()) for feed in inputs)


def _warn(note: str) -> str:
    warnings.warn(f"{note}; keeping the unsimplified graph", stacklevel=3)
    return note
