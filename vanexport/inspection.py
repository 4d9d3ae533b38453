"""What is in a file: an ONNX model (I/O, opset, op histogram, metadata, parameters), a TensorRT plan (its
manifest, whether it fits this machine, and the engine inspector's per-layer table when TensorRT is here), or a
bundle (its manifest, files, models with their fidelity, engines with their manifests' facts; checked completely,
never unpacked)."""
from __future__ import annotations

import collections
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import VanexportError
from .files import sha256_file
from .formats.names import kind_of


@dataclass
class InspectReport:
    path: str
    kind: str  # "onnx", "plan" or "bundle"
    bytes: int
    sha256: str
    details: dict
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_file(path) -> InspectReport:
    path = Path(path)
    if not path.is_file():
        raise VanexportError(f"'{path}' not found", "pass an .onnx file, a TensorRT .plan or a bundle (.tar.gz)")
    kind = kind_of(path)
    if kind == "onnx":
        return inspect_onnx(path)
    if kind == "plan":
        return inspect_plan(path)
    if kind == "bundle":
        return inspect_bundle(path)
    raise VanexportError(f"cannot inspect '{path.name}'", "pass an .onnx file, a TensorRT .plan or a bundle (.tar.gz)")


def _shape(value_info) -> list:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def _dtype(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "?"


def inspect_onnx(path) -> InspectReport:
    from .formats.onnx_metadata import load_onnx

    path = Path(path)
    proto = load_onnx(path)
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    # Weights live in initializers and, after some exporters' constant folding, in Constant nodes.
    tensors = list(graph.initializer) + [a.t for n in graph.node if n.op_type == "Constant"
                                         for a in n.attribute if a.name == "value"]
    histogram = collections.Counter(n.op_type for n in graph.node)
    metadata = {}
    for p in proto.metadata_props:
        try:
            metadata[p.key] = json.loads(p.value)
        except ValueError:
            metadata[p.key] = p.value
    details = {
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ir_version": proto.ir_version,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        "inputs": [{"name": i.name, "dtype": _dtype(i.type.tensor_type.elem_type), "shape": _shape(i)}
                   for i in graph.input if i.name not in initializers],
        "outputs": [{"name": o.name, "dtype": _dtype(o.type.tensor_type.elem_type), "shape": _shape(o)}
                    for o in graph.output],
        "nodes": len(graph.node),
        "op_histogram": dict(histogram.most_common()),
        "parameters": sum(_numel(t) for t in tensors),
        "weight_dtypes": dict(collections.Counter(_dtype(t.data_type) for t in tensors).most_common()),
        "metadata": metadata,
    }
    return InspectReport(str(path), "onnx", path.stat().st_size, sha256_file(path), details)


def _numel(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n


def inspect_plan(path) -> InspectReport:
    """The manifest and checks need no TensorRT; the per-layer table does (and a plan that fits this machine)."""
    from .formats.engine_manifest import compatibility_problem, read_manifest

    path = Path(path)
    digest = sha256_file(path)
    notes: list[str] = []
    try:
        manifest = read_manifest(path)
    except VanexportError as e:
        return InspectReport(str(path), "plan", path.stat().st_size, digest, {"manifest": None}, [str(e)])
    details = {"manifest": manifest.to_dict(), "hash_ok": digest == manifest.plan.sha256, "layers": None}
    if not details["hash_ok"]:
        notes.append(f"the plan does not match its manifest (sha256 {digest[:12]}, manifest "
                     f"{manifest.plan.sha256[:12]}): it was modified or replaced")
    try:
        from .machine import host_platform, require_tensorrt, tensorrt_version
        from .runtime import cuda
        from .runtime import tensorrt_engine as trt_engine

        trt, gpu = require_tensorrt()
    except VanexportError as e:
        notes.append(f"no per-layer table: {e}")
        return InspectReport(str(path), "plan", path.stat().st_size, digest, details, notes)
    problem = compatibility_problem(manifest, tensorrt_version(trt), gpu, host_platform())
    details["fits_this_machine"] = problem is None
    if problem:
        notes.append(f"no per-layer table: {problem[0]}")
    elif details["hash_ok"]:
        with cuda.Device(gpu.index), trt_engine.capture(trt) as log:
            runtime, engine = trt_engine.deserialize(trt, log, path.read_bytes(),
                                                     host_code=manifest.tensorrt.version_compatible,
                                                     dla_core=manifest.tensorrt.dla_core)
            details["layers"] = trt_engine.engine_layers(trt, engine)
            details["device_memory_bytes"] = int(getattr(engine, "device_memory_size_v2", 0) or 0)
            del engine, runtime
    return InspectReport(str(path), "plan", path.stat().st_size, digest, details, notes)


def inspect_bundle(path) -> InspectReport:
    """A bundle as `vanexport unpack` would check it (every member against manifest.json, every manifest field,
    every part against the others), without unpacking: its manifest summarised, its files, its ONNX models with
    their fidelity, and its engines with their own manifests. "verified" comes after all of these, with the list of
    what was checked; any failure is a one-line refusal instead."""
    from .device.archive import UnsafeBundle, read_bundle
    from .device.consistency import check_archive
    from .formats.bundle_manifest import MANIFEST, BundleManifest
    from .formats.engine_manifest import parse_manifest

    path = Path(path)
    record = read_bundle(path)  # refuses a damaged or tampered bundle, with one line
    try:
        m = BundleManifest.from_dict(record)
    except ValueError as e:
        raise UnsafeBundle(f"refusing bundle '{path}': {MANIFEST} {e}",
                           "get the bundle again from its source (it is damaged or was tampered with)") from None
    checks = check_archive(path, m)  # the parts agree: labels, classes, each ONNX file and its metadata
    engine_manifests = _small_members(path, [e.manifest for e in m.engines], m.files)
    engines = [{"entry": asdict(e), "manifest": parse_manifest(engine_manifests[e.manifest].decode(),
                                                               f"{e.manifest} in {path.name}").to_dict()}
               for e in m.engines]
    details = {
        "schema_version": m.schema_version, "variant": m.model.variant, "num_classes": m.model.num_classes,
        "weights": m.model.weights, "preprocessing": m.preprocessing, "input": m.io_input.to_dict(),
        "output": m.io_output.to_dict(), "labels": asdict(m.labels), "created_at": m.created_at,
        "created_by": m.created_by, "history": m.history, "timing_cache": m.timing_cache,
        "files": {name: asdict(f) for name, f in m.files.items()},
        "models": [asdict(e) for e in m.models], "engines": engines, "verified": True, "checks": checks,
    }
    notes = []
    if m.model.weights.get("random"):
        notes.append("random weights: for testing the pipeline only, predictions are meaningless")
    for e in m.models:
        if e.validated is False:
            notes.append(f"{e.file} failed its check against PyTorch: devices never pick it automatically")
        elif e.validated is None:
            notes.append(f"{e.file} was never checked against PyTorch (bundled with --no-validate)")
    return InspectReport(str(path), "bundle", path.stat().st_size, sha256_file(path), details, notes)


def _small_members(archive: Path, names: list[str], files: dict, limit: int = 16 * 2**20) -> dict[str, bytes]:
    """The bytes of a few small members (engine manifests) of a bundle already checked by `read_bundle`, each
    checked again against its sha256 in the manifest as it is read."""
    import hashlib
    import tarfile

    out: dict[str, bytes] = {}
    wanted = set(names)
    if not wanted:
        return out
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile() and member.size <= limit:
                data = tar.extractfile(member).read(limit + 1)
                if hashlib.sha256(data).hexdigest() != files[member.name].sha256:
                    raise VanexportError(f"'{member.name}' in '{archive.name}' changed while it was read",
                                         "inspect the bundle again; get it from its source if this repeats")
                out[member.name] = data
    missing = wanted - set(out)
    if missing:
        raise VanexportError(f"'{archive.name}' lacks {', '.join(sorted(missing))}", "rebuild the bundle")
    return out
