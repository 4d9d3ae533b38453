"""The JSON manifest beside every plan (never bytes prefixed to the plan, which breaks plain TensorRT loaders),
and the checks made from it before a plan is loaded: TensorRT version, GPU, and the plan's hash.

Pure Python: no TensorRT, CUDA or PyTorch needed to read, write or check a manifest.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VanexportError
from ..files import atomic_output, sha256_file
from .environment import AMPERE, GpuInfo, parse_cc

SCHEMA = "vanexport.engine/1"


@dataclass
class EngineManifest:
    plan: dict  # file (name, beside the manifest), sha256, bytes
    source_onnx: dict  # path, sha256, precision
    tensorrt: dict  # version, version_compatible, hardware_compatibility (none/ampere+/same-cc), typing, dla_core
    gpu: dict  # name, compute_capability, driver_cuda_version of the build machine
    precision: str
    inputs: list[dict]  # name, dtype, shape (-1 = dynamic), profile {min, opt, max}
    outputs: list[dict]  # name, dtype, shape
    preprocessing: dict
    num_classes: int
    model: dict  # the source ONNX's vanexport metadata (variant, weights hash...): rebuilds the PyTorch reference
    build: dict  # settings (BuildSettings.to_dict()), seconds, timing_cache, built_at
    vanexport_version: str
    validation: dict | None = None  # summary of the check against PyTorch made before the plan was written
    schema: str = SCHEMA
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EngineManifest":
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("plan", "tensorrt", "gpu", "inputs", "outputs") if k not in d]
        if missing:
            raise ValueError("missing " + ", ".join(missing))
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def input(self) -> dict:
        return self.inputs[0]

    @property
    def settings(self) -> dict:
        return self.build.get("settings", {})


def manifest_path(plan_path) -> Path:
    """engines/van_b0_224_fp16.plan -> engines/van_b0_224_fp16.manifest.json"""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.stem + ".manifest.json")


def write_manifest(manifest: EngineManifest, path) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return Path(path)


def read_manifest(plan_path) -> EngineManifest:
    """The manifest beside `plan_path`, or a one-line VanexportError."""
    path = manifest_path(plan_path)
    if not path.exists():
        raise VanexportError(f"'{Path(plan_path).name}' has no manifest ({path.name} is missing)",
                             "keep the manifest beside the plan, or rebuild it with `vanexport trt`")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
        return EngineManifest.from_dict(data)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise VanexportError(f"the manifest {path} is not readable ({e})", "rebuild the plan with `vanexport trt`") from e


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in str(version).split("."):
        digits = "".join(c for c in p if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


REBUILD = "rebuild it on this machine with `vanexport trt`"


def compatibility_problem(manifest: EngineManifest, tensorrt_version: str, gpu: GpuInfo) -> tuple[str, str] | None:
    """(why this plan cannot run with `tensorrt_version` on `gpu`, what to do), or None when it can.

    A plan runs only on the TensorRT it was built with, unless built version-compatible (then on that version or
    newer); and only on GPUs of its compute capability, unless built with hardware compatibility AMPERE_PLUS
    (any GPU with compute capability >= 8.0).
    """
    name = manifest.plan.get("file", "the plan")
    trt = manifest.tensorrt
    built, running = _version_tuple(trt["version"]), _version_tuple(tensorrt_version)
    if trt.get("version_compatible"):
        if running < built:
            return (f"{name} was built with TensorRT {trt['version']} (version-compatible: it runs on that version "
                    f"or newer) but this machine has the older TensorRT {tensorrt_version}", REBUILD)
    elif running != built:
        return (f"{name} was built with TensorRT {trt['version']} but this machine has TensorRT {tensorrt_version}",
                REBUILD + " (or build it with --version-compatible to run it on newer TensorRT versions)")
    built_cc, running_cc = parse_cc(manifest.gpu["compute_capability"]), gpu.cc
    level = trt.get("hardware_compatibility", "none")
    if level == "ampere+":
        if running_cc < AMPERE:
            return (f"{name} was built for Ampere or newer GPUs (compute capability >= 8.0) but this GPU "
                    f"({gpu.name}) has compute capability {gpu.compute_capability}", REBUILD)
    elif running_cc != built_cc:
        return (f"{name} was built for compute capability {manifest.gpu['compute_capability']} "
                f"({manifest.gpu.get('name', '?')}) but this GPU ({gpu.name}) has {gpu.compute_capability}",
                REBUILD + " (or build it with --hw-compat ampere+ to run it on any Ampere or newer GPU)")
    return None


def compatibility_warnings(manifest: EngineManifest, gpu: GpuInfo) -> list[str]:
    """Things that do not stop a plan from running but are worth saying."""
    out = []
    level = manifest.tensorrt.get("hardware_compatibility", "none")
    if level == "none" and manifest.gpu.get("name") and manifest.gpu["name"] != gpu.name:
        out.append(f"{manifest.plan.get('file')} was tuned on a {manifest.gpu['name']}, this is a {gpu.name}: "
                   "it runs, but rebuilding here is usually faster")
    if manifest.tensorrt.get("version_compatible"):
        out.append(f"{manifest.plan.get('file')} is version-compatible: TensorRT runs the lean runtime embedded "
                   "in it (host code), which is only as trustworthy as the plan file")
    return out


def check_plan_hash(plan_path, manifest: EngineManifest) -> str:
    """The plan's sha256, or a VanexportError when it is not the plan the manifest describes."""
    digest = sha256_file(plan_path)
    if digest != manifest.plan.get("sha256"):
        raise VanexportError(f"'{Path(plan_path).name}' does not match its manifest (sha256 {digest[:12]}, "
                             f"manifest {str(manifest.plan.get('sha256'))[:12]}): it was modified or replaced",
                             "rebuild it with `vanexport trt`")
    return digest


def check_loadable(plan_path, manifest: EngineManifest, tensorrt_version: str, gpu: GpuInfo) -> list[str]:
    """Refuse (VanexportError, one line) a plan that does not fit this machine or was tampered with; return
    warnings otherwise."""
    problem = compatibility_problem(manifest, tensorrt_version, gpu)
    if problem:
        raise VanexportError(*problem)
    check_plan_hash(plan_path, manifest)
    return compatibility_warnings(manifest, gpu)
