"""The JSON manifest beside every plan (never bytes prefixed to the plan, which breaks plain TensorRT loaders),
and the checks made from it before a plan is loaded: platform, TensorRT version, GPU, and the plan's hash.

Fields added after the first release have defaults, so older manifests still parse (and skip the checks that
need what they do not record).

Pure Python: no TensorRT, CUDA or PyTorch needed to read, write or check a manifest.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VanexportError
from ..files import atomic_output, sha256_file
from ..machine import AMPERE, GpuInfo, PlatformInfo, parse_cc
from .records import require

SCHEMA = "vanexport.engine/1"


@dataclass
class PlanFile:
    file: str  # the plan's name, beside the manifest
    sha256: str
    bytes: int = 0


@dataclass
class SourceOnnx:
    path: str
    sha256: str
    precision: str


@dataclass
class TensorRTInfo:
    version: str
    version_compatible: bool = False
    hardware_compatibility: str = "none"  # none | ampere+ | same-cc
    typing: str = "strong"  # strong | weak
    dla_core: int | None = None


@dataclass
class Profile:
    """The optimization profile of a dynamic input: NCHW shapes."""

    min: list[int]
    opt: list[int]
    max: list[int]

    def fits(self, shape) -> bool:
        return len(shape) == len(self.min) and all(a <= s <= b for s, a, b in zip(shape, self.min, self.max))


@dataclass
class TensorSpec:
    name: str
    dtype: str  # numpy spelling: float32, float16, ...
    shape: list[int]  # -1 for dynamic axes
    profile: Profile | None = None  # inputs only

    def to_dict(self) -> dict:
        d = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.profile is not None:
            d["profile"] = asdict(self.profile)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        require(d, ("name", "dtype", "shape"), "tensor")
        profile = d.get("profile")
        if profile is not None:
            require(profile, ("min", "opt", "max"), "profile")
            profile = Profile(list(profile["min"]), list(profile["opt"]), list(profile["max"]))
        return cls(str(d["name"]), str(d["dtype"]), list(d["shape"]), profile)


@dataclass
class BuildRecord:
    settings: dict  # trt.settings.BuildSettings.to_dict()
    timing_cache: str | None = None
    seconds: float | None = None
    built_at: str | None = None
    workspace_bytes: int | None = None  # the workspace limit the build had; None: TensorRT's default
    placement: dict | None = None  # DLA builds: {"dla": subgraphs on the DLA, "gpu": other layers}


@dataclass
class EngineManifest:
    plan: PlanFile
    source_onnx: SourceOnnx
    tensorrt: TensorRTInfo
    gpu: GpuInfo  # the build machine's
    precision: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: dict
    num_classes: int
    model: dict  # the source ONNX's vanexport metadata (variant, weights hash...): rebuilds the PyTorch reference
    build: BuildRecord
    vanexport_version: str
    validation: dict | None = None  # summary of the check against PyTorch made before the plan was written
    platform: PlatformInfo | None = None  # the build machine's; None in manifests written before it was recorded
    schema: str = SCHEMA
    extra: dict = field(default_factory=dict)

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def settings(self) -> dict:
        return self.build.settings

    @property
    def validated(self) -> bool | None:
        return None if self.validation is None else bool(self.validation.get("passed"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EngineManifest":
        """A manifest from its JSON record; ValueError naming what is missing or malformed."""
        require(d, ("plan", "source_onnx", "tensorrt", "gpu", "precision", "inputs", "outputs"), "engine manifest")
        if d.get("schema", SCHEMA) != SCHEMA:
            raise ValueError(f"schema {d.get('schema')!r}, expected {SCHEMA!r}")
        require(d["plan"], ("file", "sha256"), "plan")
        require(d["source_onnx"], ("sha256",), "source_onnx")
        require(d["tensorrt"], ("version",), "tensorrt")
        require(d["gpu"], ("name", "compute_capability"), "gpu")
        if not d["inputs"] or not d["outputs"]:
            raise ValueError("no inputs or outputs")
        build = d.get("build") or {}
        return cls(
            plan=PlanFile(str(d["plan"]["file"]), str(d["plan"]["sha256"]), int(d["plan"].get("bytes", 0))),
            source_onnx=SourceOnnx(str(d["source_onnx"].get("path", "")), str(d["source_onnx"]["sha256"]),
                                   str(d["source_onnx"].get("precision", d["precision"]))),
            tensorrt=_known(TensorRTInfo, d["tensorrt"]),
            gpu=_known(GpuInfo, d["gpu"]),
            precision=str(d["precision"]),
            inputs=[TensorSpec.from_dict(t) for t in d["inputs"]],
            outputs=[TensorSpec.from_dict(t) for t in d["outputs"]],
            preprocessing=dict(d.get("preprocessing") or {}),
            num_classes=int(d.get("num_classes") or 0),
            model=dict(d.get("model") or {}),
            build=_known(BuildRecord, {"settings": {}, **build}),
            vanexport_version=str(d.get("vanexport_version", "")),
            validation=d.get("validation"),
            platform=_known(PlatformInfo, d["platform"]) if isinstance(d.get("platform"), dict) else None,
            schema=d.get("schema", SCHEMA),
            extra=dict(d.get("extra") or {}))


def _known(cls, d: dict):
    """`cls(**d)` with the keys `cls` knows (a newer writer may add fields an older reader ignores)."""
    return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def manifest_path(plan_path) -> Path:
    """engines/van_b0_224_fp16.plan -> engines/van_b0_224_fp16.manifest.json"""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.stem + ".manifest.json")


def write_manifest(manifest: EngineManifest, path) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return Path(path)


def parse_manifest(text: str, where: str) -> EngineManifest:
    """An engine manifest from JSON text, or a one-line VanexportError naming `where` it came from."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return EngineManifest.from_dict(data)
    except (ValueError, TypeError, AttributeError) as e:
        raise VanexportError(f"the manifest {where} is not readable ({e})", "rebuild the plan with `vanexport trt`") from e


def read_manifest(plan_path) -> EngineManifest:
    """The manifest beside `plan_path`, or a one-line VanexportError."""
    path = manifest_path(plan_path)
    if not path.exists():
        raise VanexportError(f"'{Path(plan_path).name}' has no manifest ({path.name} is missing)",
                             "keep the manifest beside the plan, or rebuild it with `vanexport trt`")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise VanexportError(f"the manifest {path} is not readable ({e})", "rebuild the plan with `vanexport trt`") from e
    return parse_manifest(text, str(path))


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in str(version).split("."):
        digits = "".join(c for c in p if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


# The majors whose version-compatible plans a newer major's runtime loads: "TensorRT 10 version-compatible engines
# can run with a TensorRT 11 runtime, and TensorRT 8 version-compatible engines can run with a TensorRT 10 runtime.
# No other combination across major versions is supported." (TensorRT Support Matrix, "Engine Portability",
# docs.nvidia.com/deeplearning/tensorrt/11.4.1/getting-started/support-matrix.html; 11.4.0 says the same.)
CROSS_MAJOR = frozenset({(8, 10), (10, 11)})


def tensorrt_loads(built_with: str, runtime: str, version_compatible: bool) -> bool:
    """Whether a plan built by TensorRT `built_with` loads in TensorRT `runtime`: only the same version, unless
    it was built version-compatible, then also newer releases of its major and the CROSS_MAJOR steps. A version
    given as a prefix ("10.16", a container's "10.16.x") is compared on the parts both versions give."""
    built, there = _version_tuple(built_with), _version_tuple(runtime)
    n = min(len(built), len(there))
    if not version_compatible:
        return built[:n] == there[:n]
    if built[:1] == there[:1]:
        return there[:n] >= built[:n]
    return (built[:1] + there[:1]) in CROSS_MAJOR


REBUILD = "rebuild it on this machine with `vanexport trt`"


def platform_problem(manifest: EngineManifest, gpu: GpuInfo, platform: PlatformInfo) -> str | None:
    """Why a plan built on another platform cannot load here: another OS or CPU architecture, or a Jetson's
    integrated GPU against a discrete one (JetPack's TensorRT is a package of its own). None when it fits, or when
    the manifest does not say where it was built."""
    built = manifest.platform
    if built is None or not built.system:
        return None
    name = manifest.plan.file or "the plan"
    if (built.system, built.machine) != (platform.system, platform.machine):
        return f"{name} was built on {built.describe()}, this machine is {platform.describe()}"
    if manifest.gpu.integrated != gpu.integrated:
        kind = {True: "an integrated GPU (Jetson)", False: "a discrete GPU"}
        return f"{name} was built for {kind[manifest.gpu.integrated]}, this machine has {kind[gpu.integrated]}"
    return None


def compatibility_problem(manifest: EngineManifest, tensorrt_version: str, gpu: GpuInfo,
                          platform: PlatformInfo | None = None) -> tuple[str, str] | None:
    """(why this plan cannot run with `tensorrt_version` on `gpu` and `platform`, what to do), or None when it can.

    A plan runs only on the platform it was built on (OS, CPU architecture, Jetson or not); only with the
    TensorRT it was built with, unless built version-compatible (then on newer releases of its major too, and
    across majors only as CROSS_MAJOR says: `tensorrt_loads`); and only on GPUs
    of its compute capability, unless built with hardware compatibility AMPERE_PLUS (any GPU with compute
    capability >= 8.0). `platform` None skips the platform check (the caller built the plan here).
    """
    name = manifest.plan.file or "the plan"
    if platform is not None and (problem := platform_problem(manifest, gpu, platform)):
        return problem, REBUILD
    trt = manifest.tensorrt
    if trt.version_compatible:
        if _version_tuple(tensorrt_version) < _version_tuple(trt.version):
            return (f"{name} was built with TensorRT {trt.version} (version-compatible: it runs on that version "
                    f"or newer) but this machine has the older TensorRT {tensorrt_version}", REBUILD)
        if not tensorrt_loads(trt.version, tensorrt_version, True):
            return (f"{name} was built with TensorRT {trt.version} (version-compatible: it runs on newer releases "
                    f"of its major, and across majors only 8 to 10 and 10 to 11) but this machine has TensorRT "
                    f"{tensorrt_version}", REBUILD)
    elif _version_tuple(trt.version) != _version_tuple(tensorrt_version):
        return (f"{name} was built with TensorRT {trt.version} but this machine has TensorRT {tensorrt_version}",
                REBUILD + " (or build it with --version-compatible to run it on newer TensorRT versions of its major)")
    built_cc, running_cc = parse_cc(manifest.gpu.compute_capability), gpu.cc
    if trt.hardware_compatibility == "ampere+":
        if running_cc < AMPERE:
            return (f"{name} was built for Ampere or newer GPUs (compute capability >= 8.0) but this GPU "
                    f"({gpu.name}) has compute capability {gpu.compute_capability}", REBUILD)
    elif running_cc != built_cc:
        return (f"{name} was built for compute capability {manifest.gpu.compute_capability} "
                f"({manifest.gpu.name or '?'}) but this GPU ({gpu.name}) has {gpu.compute_capability}",
                REBUILD + " (or build it with --hw-compat ampere+ to run it on any Ampere or newer GPU)")
    return None


def compatibility_warnings(manifest: EngineManifest, gpu: GpuInfo) -> list[str]:
    """Things that do not stop a plan from running but are worth saying."""
    out = []
    if manifest.tensorrt.hardware_compatibility == "none" and manifest.gpu.name and manifest.gpu.name != gpu.name:
        out.append(f"{manifest.plan.file} was tuned on a {manifest.gpu.name}, this is a {gpu.name}: "
                   "it runs, but rebuilding here is usually faster")
    if manifest.tensorrt.version_compatible:
        out.append(f"{manifest.plan.file} is version-compatible: TensorRT runs the lean runtime embedded "
                   "in it (host code), which is only as trustworthy as the plan file")
    return out


def check_plan_hash(plan_path, manifest: EngineManifest) -> str:
    """The plan's sha256, or a VanexportError when it is not the plan the manifest describes."""
    digest = sha256_file(plan_path)
    if digest != manifest.plan.sha256:
        raise VanexportError(f"'{Path(plan_path).name}' does not match its manifest (sha256 {digest[:12]}, "
                             f"manifest {manifest.plan.sha256[:12]}): it was modified or replaced",
                             "rebuild it with `vanexport trt`")
    return digest


def check_loadable(plan_path, manifest: EngineManifest, tensorrt_version: str, gpu: GpuInfo,
                   platform: PlatformInfo | None = None) -> list[str]:
    """Refuse (VanexportError, one line) a plan that does not fit this machine or was tampered with; return
    warnings otherwise."""
    problem = compatibility_problem(manifest, tensorrt_version, gpu, platform)
    if problem:
        raise VanexportError(*problem)
    check_plan_hash(plan_path, manifest)
    return compatibility_warnings(manifest, gpu)
