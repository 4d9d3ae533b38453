"""The TensorRT a serving target carries, and whether a plan built here loads there.

A plan runs only with the TensorRT version that built it, unless it was built version-compatible: then also with
newer runtimes of its major, and across majors only from 10 to 11 and from 8 to 10 (TensorRT support matrix,
"Engine Portability", 11.4.1; the rule is `formats.engine_manifest.tensorrt_loads`). A DeepStream or Triton container with another TensorRT cannot load it. nvinfer then
rebuilds the engine from the ONNX file on every start (an INT8 Q/DQ file without a calibration table comes out
FP16); Triton refuses the model. So `vanexport deepstream` and `vanexport triton` compare each plan with the
TensorRT of the target they are told (`--target`, default the newest release whose TensorRT was read below).

Where each row was read:
- DeepStream 9.2: docs.nvidia.com/deepstream/text/DS_Migration_guide (DeepStream 9.2): "TensorRT 10.16.0.72 for
  x86 and TensorRT 10.16.1.7 for Jetson".
- DeepStream 9.1 and 9.0: NVIDIA/DeepStream README.md of each release: 9.1 "TensorRT 10.16.x" on x86 and
  JetPack 7.2; 9.0 "TensorRT 10.14.x" on x86, "TensorRT 10.13.x" on JetPack 7.1.
- Triton: triton-inference-server/server docs/introduction/compatibility.md (main of 2026-08-19), the TensorRT
  column of the trtllm-python-py3 containers, 25.06 to 26.07 (the newest it lists). It has no TensorRT column for
  the plain `-py3` containers, whose release notes ("Triton Inference Server Release 26.07") refer to the
  Frameworks Support Matrix, which could not be read here; for those, `--target tensorrt:VERSION`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import VanexportError
from ..formats.engine_manifest import tensorrt_loads


@dataclass(frozen=True)
class Target:
    name: str  # "DeepStream 9.2", "Triton 26.07", "TensorRT 10.3"
    tensorrt: str  # the TensorRT version it carries: "10.16.0.72", or a prefix such as "10.16"


RELEASES = {
    "deepstream": {"9.2": "10.16.0.72", "9.2-jetson": "10.16.1.7", "9.1": "10.16", "9.1-jetson": "10.16",
                   "9.0": "10.14", "9.0-jetson": "10.13"},
    "triton": {"26.07": "10.14.1.48", "26.06": "10.14.1.48", "26.05": "10.14.1.48", "26.04": "10.14.1.48",
               "26.03": "10.14.1.48", "26.02": "10.13.3.9", "26.01": "10.13.3.9", "25.12": "10.13.3.9",
               "25.11": "10.13.3.9", "25.10": "10.11.0.33", "25.09": "10.11.0.33", "25.08": "10.11.0.33",
               "25.07": "10.10.0.31", "25.06": "10.10.0.31"},
}
DEFAULT_RELEASE = {"deepstream": "9.2", "triton": "26.07"}
SERVER_NAME = {"deepstream": "DeepStream", "triton": "Triton"}
VERSION_COMPATIBLE_FLAG = "--backend-config=tensorrt,version-compatible=true"


def resolve_target(kind: str, value: str | None) -> Target:
    """`--target`: a release of the `kind` server ("9.2", "9.2-jetson", "26.07") or "tensorrt:VERSION"."""
    releases = RELEASES[kind]
    value = DEFAULT_RELEASE[kind] if value is None else str(value).strip()
    if value in releases:
        return Target(f"{SERVER_NAME[kind]} {value}", releases[value])
    if re.fullmatch(r"tensorrt:\d+(\.\d+){0,3}", value):
        version = value.split(":", 1)[1]
        return Target(f"TensorRT {version}", version)
    raise VanexportError(f"--target {value[:40]!r} is neither a {SERVER_NAME[kind]} release nor tensorrt:VERSION",
                         f"pass one of {', '.join(releases)}, or the target's TensorRT as e.g. tensorrt:10.3")


def plan_problem(plan: str, built_with: str, version_compatible: bool, target: Target) -> str | None:
    """Why the plan will not load on `target` (one line), or None. A target known only as a prefix ("10.16")
    is compared on that prefix (formats.engine_manifest.tensorrt_loads holds TensorRT's rule)."""
    if tensorrt_loads(built_with, target.tensorrt, version_compatible):
        return None
    if version_compatible:
        return (f"{plan} is version-compatible from TensorRT {built_with}, but {target.name} has TensorRT "
                f"{target.tensorrt}: it will not load there")
    return f"{plan} was built with TensorRT {built_with}, but {target.name} has TensorRT {target.tensorrt}: it will " \
           "not load there"
