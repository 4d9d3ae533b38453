"""onnxsim, trusted only when it keeps the outputs: otherwise the original graph is kept, with a warning."""
from __future__ import annotations

import warnings

import numpy as np


def simplify(model_proto, check_inputs: list[dict[str, np.ndarray]], atol: float = 1e-5):
    """Return (model, note). `note` is None when the simplified graph was kept, else why it was not."""
    try:
        import onnxsim
        simplified, ok = onnxsim.simplify(model_proto, check_n=0)
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

    sa, sb = make_session(a), make_session(b)
    return max(float(np.abs(sa.run(None, feed)[0] - sb.run(None, feed)[0]).max()) for feed in inputs)


def _warn(note: str) -> str:
    warnings.warn(f"{note}; keeping the unsimplified graph", stacklevel=3)
    return note
