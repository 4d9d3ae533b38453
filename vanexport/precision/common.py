"""What the FP16 and INT8 converters share: the FP32 source they start from, the output they write, the metadata that
says what the converted file is and where it came from, and its check against PyTorch."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import ValidationFailed, VanexportError
from ..files import check_output_path, sha256_file
from ..formats.names import converted_path
from ..formats.onnx_metadata import ModelMetadata, load_onnx, read_metadata, write_metadata


@dataclass
class PrecisionResult:
    path: str
    sha256: str
    precision: str  # "fp16" or "int8"
    source: str  # the FP32 ONNX it was made from
    source_sha256: str
    seconds: dict  # {"convert" (FP16) or "quantize" (INT8: calibration included): s, "validate": s, "total": s}
    validation: dict | None = None  # the check against PyTorch FP32 (a ValidationReport record); None when skipped
    kept_fp32: list[str] = field(default_factory=list)  # node names left in FP32 (FP16) / not quantized (INT8)
    converted_nodes: int = 0  # nodes computing in FP16 / weighted nodes with Q/DQ inputs
    calibration: dict | None = None  # INT8: method, images used, skipped, cache path and whether it was hit
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def load_fp32_source(onnx_path):
    """(model proto, metadata, sha256) of an FP32 ONNX file written by `vanexport onnx`."""
    path = Path(onnx_path)
    if path.is_dir() or (path.exists() and path.suffix.lower() != ".onnx"):
        raise VanexportError(f"'{path.name}' is not an .onnx file", "pass an FP32 .onnx file made by `vanexport onnx`")
    proto = load_onnx(path)
    meta = read_metadata(proto)
    if meta.precision != "fp32":
        raise VanexportError(f"'{path.name}' is already {meta.precision.upper()}",
                             "convert the FP32 file it was made from (" + meta.extra.get("source", "see its metadata") + ")")
    return proto, meta, sha256_file(path)


def prepare_output(onnx_path, output, precision: str) -> Path:
    out = Path(output) if output else converted_path(onnx_path, precision)
    if Path(out).resolve() == Path(onnx_path).resolve():
        raise VanexportError("the output would overwrite the FP32 source", "choose another -o path")
    return check_output_path(out)


def stamp(proto, meta: ModelMetadata, precision: str, source: Path, source_sha: str, settings: dict) -> None:
    """The converted file describes itself like the FP32 one, plus its precision and where it came from."""
    meta.precision = precision
    meta.vanexport_version = __version__
    meta.extra = {**meta.extra, "source": str(source), "source_sha256": source_sha,
                  "precision_settings": json.dumps(settings, sort_keys=True)}
    write_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "vanexport", __version__
    proto.doc_string = f"VAN-{meta.variant} ({meta.num_classes} classes), {precision.upper()}, by vanexport {__version__}"


def check_converted(tmp: Path, output: Path, meta: ModelMetadata, precision: str, *, images=None, weights=None,
                    reference=None, validate: bool = True, strict: bool = True, progress=None,
                    hint: str = "", validator=None) -> tuple[dict | None, list[str]]:
    """(the ValidationReport record or None, warnings): the converted file (still under its temporary name `tmp`,
    to be `output`) compared with PyTorch FP32, on `images` or else on random batches and the sample photos. A
    failure raises, so nothing is written, except with random weights (a verdict on them says nothing: the file is
    written, with a warning) and when `strict` is False (the caller records the failing verdict: a bundle marks the
    file as failed). `validator`: what runs the check (default `check.validate.validate_onnx`, ONNX Runtime)."""
    if not validate:
        return None, []
    if validator is None:
        from ..check.validate import validate_onnx as validator

    report = validator(tmp, weights=weights, images=images, reference=reference, progress=progress)
    report.model = str(output)  # the file the report is about, not its temporary name
    if report.passed or not strict:
        return report.to_dict(), []
    where = f"'{images}'" if images else "random batches and sample photos"
    failing = f"the {precision.upper()} model fails its thresholds on {where}: " + "; ".join(report.failures)
    if meta.weights_layout == "random":
        return report.to_dict(), [f"{failing}. Written anyway: the weights are random, their logits nearly tied, so "
                                  "rounding flips the top class of many inputs and the verdict says nothing about a "
                                  "trained model; export with --weights for a check that counts"]
    raise ValidationFailed(f"{failing}; nothing was written", hint)


def copy_model(proto):
    new = type(proto)()
    new.CopyFrom(proto)
    return new


def seconds(**kw) -> dict:
    return {k: round(v, 3) for k, v in kw.items() if v is not None}
