"""`vanexport triton`: a Triton Inference Server model repository from a bundle.

One model for the ONNX Runtime backend and, for each precision that has plans, one for the TensorRT backend
(plans for several GPU architectures share a model through `cc_model_filenames`). Each config.pbtxt is built
as Triton's own `inference.ModelConfig` protobuf message (the schema the `tritonclient` package ships) and
parsed back from the written text before the folder is moved into place.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import VanexportError

PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}


@dataclass
class TritonResult:
    repository: str
    models: list[dict]
    schema: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def model_config_pb2():
    """Triton's model_config.proto compiled for Python, from `tritonclient`.

    tritonclient ships it as tritonclient.grpc.model_config_pb2, but importing that runs the package's gRPC
    client, which needs grpcio. The schema itself needs only protobuf, so without grpcio the module is loaded
    from its file in the installed package.
    """
    try:
        from tritonclient.grpc import model_config_pb2 as pb2

        return pb2
    except ImportError as e:
        missing = e
    except RuntimeError as e:  # tritonclient.grpc raises RuntimeError when grpcio is absent
        missing = e
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise VanexportError("`vanexport triton` needs the tritonclient package (Triton's model-config schema)",
                             "pip install 'vanexport[triton]' (or pip install tritonclient)") from missing
    path = Path(list(spec.submodule_search_locations)[0]) / "grpc" / "model_config_pb2.py"
    mod_spec = importlib.util.spec_from_file_location("vanexport_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def parse_model_config(text: str):
    """Parse config.pbtxt text with Triton's schema and check what the schema alone cannot; return the message."""
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    try:
        cfg = text_format.Parse(text, pb2.ModelConfig())
    except text_format.ParseError as e:
        raise VanexportError(f"config.pbtxt does not fit Triton's model-config schema: {e}",
                             "this is a bug in vanexport; please report it") from e
    problems = []
    if not cfg.name:
        problems.append("no name")
    if cfg.platform not in PLATFORMS.values() and cfg.backend not in PLATFORMS:
        problems.append(f"unknown platform '{cfg.platform}'")
    if cfg.max_batch_size < 0:
        problems.append("negative max_batch_size")
    if cfg.HasField("dynamic_batching"):
        if cfg.max_batch_size == 0:
            problems.append("dynamic batching needs max_batch_size > 0")
        if any(b < 1 or b > cfg.max_batch_size for b in cfg.dynamic_batching.preferred_batch_size):
            problems.append("a preferred batch size is outside 1..max_batch_size")
    for t in list(cfg.input) + list(cfg.output):
        if not t.name or t.data_type == pb2.TYPE_INVALID or not t.dims or any(d == 0 or d < -1 for d in t.dims):
            problems.append(f"tensor '{t.name}' has no name, type or valid dims")
    if not cfg.input or not cfg.output:
        problems.append("no inputs or outputs")
    if problems:
        raise VanexportError("config.pbtxt is not a valid Triton model config: " + "; ".join(problems),
                             "this is a bug in vanexport; please report it")
    return cfg


def _dims(shape: list) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def _config(pb2, name: str, platform: str, input_io: dict, num_classes: int, output_name: str, max_batch: int,
            kind: str, instances: int, delay_us: int, preferred: list[int], filenames: dict[str, str] | None = None,
            default_file: str | None = None):
    cfg = pb2.ModelConfig(name=name, platform=platform, max_batch_size=max_batch)
    shape = input_io["shape"]
    in_dims = _dims(shape[1:] if max_batch else shape)
    cfg.input.add(name=input_io["name"], data_type=pb2.TYPE_FP32, dims=in_dims)
    cfg.output.add(name=output_name, data_type=pb2.TYPE_FP32,
                   dims=[num_classes] if max_batch else [shape[0] if isinstance(shape[0], int) else -1, num_classes],
                   label_filename="labels.txt")
    cfg.instance_group.add(count=instances, kind=pb2.ModelInstanceGroup.KIND_CPU if kind == "cpu" else
                           pb2.ModelInstanceGroup.KIND_GPU)
    if max_batch:
        cfg.dynamic_batching.max_queue_delay_microseconds = delay_us
        cfg.dynamic_batching.preferred_batch_size.extend(b for b in preferred if 1 <= b <= max_batch)
    if default_file:
        cfg.default_model_filename = default_file
    for cc, fname in (filenames or {}).items():
        cfg.cc_model_filenames[cc] = fname
    return cfg


def triton_repository(bundle: str | os.PathLike, output: str | os.PathLike, *, name: str | None = None,
                      precision: str = "fp32", max_batch: int = 32, instances: int = 1, cpu: bool = False,
                      max_queue_delay_us: int = 100, force: bool = False,
                      progress: Callable[[str], None] | None = None) -> TritonResult:
    """Write model folders for `bundle` into the Triton model repository `output` (created if needed)."""
    from google.protobuf import text_format

    from ..device.bundle import open_bundle

    step = progress or (lambda msg: None)
    if max_batch < 1 or instances < 1:
        raise VanexportError("--max-batch and --instances must be 1 or more", "pass positive numbers")
    pb2 = model_config_pb2()
    step(f"checking and unpacking {Path(bundle).name}")
    b = open_bundle(bundle)
    m = b.manifest
    base = name or f"van_{b.variant}"
    io, out_name = m.io_input.to_dict(), m.io_output.name
    static = b.static_batch is not None
    warns: list[str] = []
    if static:
        warns.append(f"the ONNX file has a static batch of {b.static_batch}: max_batch_size 0, no dynamic batching")

    plans: dict[str, list] = {}
    for e in b.engines:
        plans.setdefault(e.entry.precision, []).append(e)
    # (model name, platform, {file in version folder: source}, config)
    models = [(base, "onnxruntime", {"model.onnx": b.onnx(precision)},
               _config(pb2, base, PLATFORMS["onnxruntime"], io, b.num_classes, out_name, 0 if static else max_batch,
                       "cpu" if cpu else "gpu", instances, max_queue_delay_us, []))]
    for prec, engines in sorted(plans.items()):
        by_cc: dict[str, object] = {}
        for e in engines:
            cc = e.manifest.gpu.compute_capability
            if cc in by_cc:
                warns.append(f"two {prec} plans for compute capability {cc}: keeping {e.plan_path.name}")
            by_cc[cc] = e
        files = {f"model_sm{cc.replace('.', '')}.plan": e.plan_path for cc, e in sorted(by_cc.items())}
        first = next(iter(files))
        profile = _profile(engines[0].manifest, io)
        mb = 0 if static else profile["max_batch"] or max_batch
        models.append((f"{base}_trt_{prec}", "tensorrt", files,
                       _config(pb2, f"{base}_trt_{prec}", PLATFORMS["tensorrt"], dict(io, shape=profile["shape"]),
                               b.num_classes, out_name, mb, "gpu", instances, max_queue_delay_us,
                               [profile["opt_batch"]] if profile["opt_batch"] else [],
                               {cc: f"model_sm{cc.replace('.', '')}.plan" for cc in sorted(by_cc)}, first)))

    repo = Path(output)
    repo.mkdir(parents=True, exist_ok=True)
    for model_name, _, _, _ in models:
        if (repo / model_name).exists() and not force:
            raise VanexportError(f"'{repo / model_name}' already exists", "pass --force to replace it, or another --name")
    records = []
    for model_name, backend, files, cfg in models:
        step(f"writing {repo / model_name}")
        text = f"# Triton model config written by vanexport {__version__} from {Path(bundle).name}\n" + \
            text_format.MessageToString(cfg)
        parse_model_config(text)  # the written text, read back with Triton's schema
        _write_model_dir(repo / model_name, text, files, b.file(m.labels.file))
        records.append({"name": model_name, "backend": backend, "platform": cfg.platform, "path": str(repo / model_name),
                        "max_batch_size": cfg.max_batch_size, "instance_kind": "cpu" if cpu and backend != "tensorrt" else "gpu",
                        "files": sorted(["config.pbtxt", "labels.txt"] + [f"1/{f}" for f in files]),
                        "cc_model_filenames": dict(cfg.cc_model_filenames)})
    return TritonResult(str(repo), records, "tritonclient model_config.proto (inference.ModelConfig)", warns)


def _profile(plan_manifest, io: dict) -> dict:
    """Batch range and input shape (Triton dims) from the optimisation profile in a plan's manifest."""
    inputs = [i for i in plan_manifest.inputs if i.name == io["name"]]
    profile = inputs[0].profile if inputs else None
    if not profile:
        return {"max_batch": None, "opt_batch": None, "shape": list(io["shape"])}
    lo, opt, hi = profile.min, profile.opt, profile.max
    # dims that differ between min and max are dynamic
    return {"max_batch": hi[0], "opt_batch": opt[0], "shape": [a if a == b else "dynamic" for a, b in zip(lo, hi)]}


def _write_model_dir(dest: Path, config: str, files: dict[str, Path], labels: Path) -> None:
    """Build the model folder beside its final place, then swap it in (a reader never sees half a model)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (tmp / "config.pbtxt").write_text(config)
        shutil.copyfile(labels, tmp / "labels.txt")
        (tmp / "1").mkdir()
        for fname, src in files.items():
            shutil.copyfile(src, tmp / "1" / fname)
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
