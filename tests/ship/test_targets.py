"""Which plans load on which serving target: TensorRT's rule (a plan runs with the TensorRT that built it; a
version-compatible one also with newer ones of its major, and 10 -> 11, 8 -> 10: the support matrix's "Engine
Portability", 11.4.1), worked out by hand for each row."""
import pytest

from vanexport.errors import VanexportError
from vanexport.ship.targets import RELEASES, Target, plan_problem, resolve_target


@pytest.mark.parametrize("built, compatible, there, loads", [
    ("10.16.1.11", False, "10.16.1.11", True),
    ("10.16.1.11", False, "10.16.0.72", False),  # another patch release: not the same TensorRT
    ("10.16.1.11", False, "10.16", True),  # a target known as "10.16.x"
    ("11.4.0.106", False, "10.14.1.48", False),
    ("10.14.1.48", True, "10.16.0.72", True),  # version-compatible: newer runtimes load it
    ("10.16.1.11", True, "10.14.1.48", False),  # but not older ones
    ("11.4.0.106", True, "10.16", False),
    ("10.16.1.11", True, "11.4.0.106", True),  # 10 -> 11: the one cross-major step for TensorRT 10 plans
    ("8.6.1", True, "11.4.0.106", False),  # "a TensorRT 8 engine cannot run with a TensorRT 11 runtime"
    ("8.6.1", True, "10.16", True),  # 8 -> 10, the other cross-major step
    ("8.6.1", True, "9.3", False),  # and no other
])
def test_plan_against_target(built, compatible, there, loads):
    problem = plan_problem("m.plan", built, compatible, Target("X", there))
    assert (problem is None) == loads
    if problem:
        assert problem.startswith("m.plan ") and built in problem and there in problem and "\n" not in problem


def test_targets_by_release_or_tensorrt_version():
    assert resolve_target("deepstream", None) == Target("DeepStream 9.2", "10.16.0.72")  # DS 9.2 migration guide
    assert resolve_target("deepstream", "9.2-jetson") == Target("DeepStream 9.2-jetson", "10.16.1.7")
    assert resolve_target("triton", None) == Target("Triton 26.07", "10.14.1.48")  # server compatibility.md
    assert resolve_target("triton", "tensorrt:10.3") == Target("TensorRT 10.3", "10.3")
    for bad in ("9.2", "tensorrt:ten", "26.07; rm -rf /", ""):
        with pytest.raises(VanexportError, match="is neither a Triton release nor tensorrt:VERSION") as e:
            resolve_target("triton", bad)
        assert "26.07" in e.value.hint and "\n" not in e.value.problem
    assert all(v.split(".")[0] == "10" for table in RELEASES.values() for v in table.values())  # all TensorRT 10
