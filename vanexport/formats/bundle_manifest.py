"""manifest.json of a bundle: the typed record, and the checks made before anything it says is used.

A bundle comes from elsewhere, so its manifest is untrusted input. Two levels:
- the envelope (`check_envelope`): format, schema version, and the file list, each member a normalised relative
  path with a sha256 and a size. The archive reader checks every member against it before keeping a byte.
- the whole record (`BundleManifest.from_dict`): every path it names anywhere (labels, ONNX files, engines and
  their manifests, timing cache, check data) must be one of the listed members, so nothing outside the bundle,
  and nothing unhashed, can ever be opened through it; and every other field holds only what it may (formats.fields):
  a variant is one of b0-b6, tensor names are plain, numbers are in range, printed text is one line.
Whether the parts agree with each other (labels, ONNX files, their metadata) needs the files: device/bundle.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import fields
from .names import PRECISIONS
from .records import member_path, require, sha256_hex

FORMAT = "vanexport-bundle"
TENSOR_DTYPES = ("float32", "float16")  # what a bundle's input and output may be
MAX_AXIS = 1 << 20  # a static axis of a tensor (batch, channels, pixels, classes) larger than this is no VAN
SCHEMA_VERSION = 1  # bump when a reader of the old schema would misread a new bundle
MANIFEST = "manifest.json"


class NewerSchema(ValueError):
    """The bundle was written by a newer vanexport than this one reads."""

    def __init__(self, version: int, made_by: str):
        self.version, self.made_by = version, made_by
        super().__init__(f"schema {version}")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


def check_envelope(d) -> dict[str, FileEntry]:
    """The listed files of a manifest, after checking what every bundle manifest must be. ValueError (or
    NewerSchema) otherwise."""
    if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("files"), dict):
        raise ValueError(f"{MANIFEST} is not a vanexport bundle manifest")
    version = d.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{MANIFEST} has no valid schema_version")
    if version > SCHEMA_VERSION:
        made_by = d.get("created_by", {}).get("vanexport", "?") if isinstance(d.get("created_by"), dict) else "?"
        raise NewerSchema(version, str(made_by))
    files = {}
    for name, entry in d["files"].items():
        try:
            member_path(name)
        except ValueError as e:
            raise ValueError(f"{MANIFEST} lists {e}") from None
        if name == MANIFEST:
            raise ValueError(f"{MANIFEST} lists itself")
        require(entry, ("sha256", "size"), f"the entry of '{name}'")
        size = entry["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"the entry of '{name}' has no valid size")
        files[name] = FileEntry(sha256_hex(entry["sha256"], f"the sha256 of '{name}'"), size)
    return files


@dataclass
class TensorIO:
    name: str
    dtype: str
    shape: list  # ints, or axis names for dynamic axes
    layout: str | None = None  # input: NCHW
    meaning: str | None = None  # output: logits

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict, what: str) -> "TensorIO":
        require(d, ("name", "dtype", "shape"), what)
        if not isinstance(d["shape"], list) or not 2 <= len(d["shape"]) <= 4:
            raise ValueError(f"{what} has no valid shape")
        for i, axis in enumerate(d["shape"]):
            if isinstance(axis, str):
                fields.tensor_name(axis, f"{what}.shape[{i}]")
            else:
                fields.whole_number(axis, f"{what}.shape[{i}]", 1, MAX_AXIS)
        if d["dtype"] not in TENSOR_DTYPES:
            raise ValueError(f"{what}.dtype {str(d['dtype'])[:40]!r} is not one of {', '.join(TENSOR_DTYPES)}")
        if d.get("layout") not in (None, "NCHW"):
            raise ValueError(f"{what}.layout {str(d['layout'])[:40]!r} is not 'NCHW'")
        meaning = None if d.get("meaning") is None else fields.one_line(d["meaning"], f"{what}.meaning", 200)
        return cls(fields.tensor_name(d["name"], f"{what}.name"), d["dtype"], list(d["shape"]), d.get("layout"),
                   meaning)

    @property
    def static_batch(self) -> int | None:
        return self.shape[0] if isinstance(self.shape[0], int) else None


@dataclass
class ModelInfo:
    variant: str
    num_classes: int
    weights: dict  # source, layout, sha256, random
    family: str = "VAN"


@dataclass
class LabelsEntry:
    file: str
    count: int
    source: str


@dataclass
class OnnxEntry:
    file: str
    precision: str
    sha256: str
    made_by: dict
    validation: dict | None = None

    @property
    def validated(self) -> bool | None:
        return None if self.validation is None else bool(self.validation.get("passed", True))


@dataclass
class EngineEntry:
    file: str
    manifest: str  # the plan's own manifest, beside it in the bundle
    sha256: str
    source: str  # the bundled ONNX file it was built from
    precision: str
    tensorrt_version: str | None = None
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    gpu_name: str | None = None
    compute_capability: str | None = None
    validation: dict | None = None

    @property
    def validated(self) -> bool | None:
        return None if self.validation is None else bool(self.validation.get("passed", True))


@dataclass
class CheckEntry:
    file: str
    images: list[str]
    logits: str


@dataclass
class BundleManifest:
    model: ModelInfo
    preprocessing: dict
    io_input: TensorIO
    io_output: TensorIO
    labels: LabelsEntry
    models: list[OnnxEntry]
    engines: list[EngineEntry]
    check: CheckEntry
    files: dict[str, FileEntry] = field(default_factory=dict)
    timing_cache: str | None = None
    created_at: str = ""
    created_by: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    format: str = FORMAT

    def model_file(self, precision: str) -> OnnxEntry | None:
        return next((m for m in self.models if m.precision == precision), None)

    @property
    def precisions(self) -> list[str]:
        return [m.precision for m in self.models]

    def to_dict(self) -> dict:
        return {
            "format": self.format, "schema_version": self.schema_version, "created_at": self.created_at,
            "created_by": self.created_by, "model": asdict(self.model), "preprocessing": self.preprocessing,
            "io": {"input": self.io_input.to_dict(), "output": self.io_output.to_dict()},
            "labels": asdict(self.labels), "models": [asdict(m) for m in self.models],
            "engines": [asdict(e) for e in self.engines], "timing_cache": self.timing_cache,
            "check": asdict(self.check), "history": self.history,
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
        }

    @classmethod
    def from_dict(cls, d) -> "BundleManifest":
        """The record, after checking that it is complete and that every path it names is a listed member."""
        files = check_envelope(d)
        require(d, ("model", "preprocessing", "io", "labels", "models", "engines", "check"), MANIFEST)
        model = require(d["model"], ("variant", "num_classes"), "model")
        if not isinstance(model["num_classes"], int) or isinstance(model["num_classes"], bool) \
                or model["num_classes"] < 1:
            raise ValueError("model.num_classes is not a positive integer")
        fields.whole_number(model["num_classes"], "model.num_classes")
        io = require(d["io"], ("input", "output"), "io")
        labels = require(d["labels"], ("file", "count"), "labels")
        check = require(d["check"], ("file",), "check")
        if not isinstance(d["models"], list) or not d["models"] or not isinstance(d["engines"], list):
            raise ValueError("models / engines are not lists (a bundle has at least its FP32 ONNX file)")
        for key in ("weights", "family"):
            fields.printable(model.get(key), f"model.{key}", 512)
        for key in ("created_at", "created_by", "history"):
            fields.printable(d.get(key), key)
        fields.printable(labels.get("source"), "labels.source", 512)
        fields.printable([check.get("images"), check.get("logits")], "check", 512)
        m = cls(
            model=ModelInfo(fields.variant_name(model["variant"], "model.variant"), model["num_classes"],
                            _object(model.get("weights"), "model.weights"), str(model.get("family", "VAN"))),
            preprocessing=dict(fields.preprocessing(d["preprocessing"])),
            io_input=TensorIO.from_dict(io["input"], "io.input"),
            io_output=TensorIO.from_dict(io["output"], "io.output"),
            labels=LabelsEntry(labels["file"], fields.whole_number(labels["count"], "labels.count"),
                               str(labels.get("source", ""))),
            models=[_onnx_entry(e, i) for i, e in enumerate(d["models"])],
            engines=[_engine_entry(e, i) for i, e in enumerate(d["engines"])],
            check=CheckEntry(check["file"], [str(n) for n in check.get("images") or []], str(check.get("logits", ""))),
            files=files, timing_cache=d.get("timing_cache"), created_at=str(d.get("created_at", "")),
            created_by=_object(d.get("created_by"), "created_by"), history=_list(d.get("history"), "history"),
            schema_version=d["schema_version"], format=d["format"])
        m._check_paths()
        m._check_shapes()
        return m

    def _check_shapes(self) -> None:
        """The record agrees with itself: one class count, one input size."""
        n, pre = self.model.num_classes, self.preprocessing
        if self.labels.count != n:
            raise ValueError(f"labels.count {self.labels.count} is not model.num_classes {n}")
        out, inp = self.io_output.shape, self.io_input.shape
        if len(out) != 2 or out[1] != n:
            raise ValueError(f"io.output.shape {out} is not [batch, model.num_classes = {n}]")
        if len(inp) != 4 or inp[1] != 3:
            raise ValueError(f"io.input.shape {inp} is not [batch, 3, height, width]")
        for i in (2, 3):
            if isinstance(inp[i], int) and inp[i] != pre["input_size"]:
                raise ValueError(f"io.input.shape[{i}] {inp[i]} is not preprocessing.input_size {pre['input_size']}")

    def referenced_paths(self) -> dict[str, str]:
        """Every member path this manifest names, with what names it."""
        out = {self.labels.file: "labels.file", self.check.file: "check.file"}
        for i, e in enumerate(self.models):
            out[e.file] = f"models[{i}].file"
        for i, e in enumerate(self.engines):
            out[e.file] = f"engines[{i}].file"
            out[e.manifest] = f"engines[{i}].manifest"
        if self.timing_cache is not None:
            out[self.timing_cache] = "timing_cache"
        return out

    def _check_paths(self) -> None:
        for path, where in self.referenced_paths().items():
            try:
                member_path(path)
            except ValueError as e:
                raise ValueError(f"{where} names {e}") from None
            if path not in self.files:
                raise ValueError(f"{where} names '{path}', which is not a listed file of the bundle")
        for what, entries in (("models", self.models), ("engines", self.engines)):
            for i, e in enumerate(entries):
                if self.files[e.file].sha256 != e.sha256:
                    raise ValueError(f"{what}[{i}] gives '{e.file}' another sha256 than the file list")
        onnx_files = {e.file for e in self.models}
        for i, e in enumerate(self.engines):
            if e.manifest != engine_manifest_member(e.file):
                raise ValueError(f"engines[{i}].manifest is not beside its plan ({engine_manifest_member(e.file)})")
            if e.source not in onnx_files:
                raise ValueError(f"engines[{i}].source names '{e.source}', which is not one of the bundled ONNX files")
        if len(onnx_files) != len(self.models) or len(set(self.precisions)) != len(self.models):
            raise ValueError("models lists one file or one precision twice")


def engine_manifest_member(plan_member: str) -> str:
    """engines/x.plan -> engines/x.manifest.json: a plan's manifest lies beside it (the TensorRT backend reads it
    from there)."""
    folder, _, name = plan_member.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}/{stem}.manifest.json" if folder else f"{stem}.manifest.json"


def _object(value, what: str) -> dict:
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return dict(value or {})


def _list(value, what: str) -> list:
    if value is not None and not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return list(value or [])


def _onnx_entry(e, i: int) -> OnnxEntry:
    require(e, ("file", "precision", "sha256"), "a models entry")
    if e["precision"] not in PRECISIONS:
        raise ValueError(f"a models entry has the unknown precision {str(e['precision'])[:40]!r}")
    validation = e.get("validation")
    if validation is not None and not isinstance(validation, dict):
        raise ValueError(f"models[{i}].validation is not a JSON object")
    fields.printable(e.get("made_by"), f"models[{i}].made_by")
    fields.printable(validation, f"models[{i}].validation")
    return OnnxEntry(e["file"], e["precision"], sha256_hex(e["sha256"], "a models entry's sha256"),
                     _object(e.get("made_by"), f"models[{i}].made_by"), validation)


def _engine_entry(e, i: int) -> EngineEntry:
    require(e, ("file", "manifest", "sha256", "source", "precision"), "an engines entry")
    if e["precision"] not in PRECISIONS:
        raise ValueError(f"an engines entry has the unknown precision {str(e['precision'])[:40]!r}")
    known = {k: v for k, v in e.items() if k in EngineEntry.__dataclass_fields__}
    fields.printable(known, f"engines[{i}]")
    known["sha256"] = sha256_hex(e["sha256"], "an engines entry's sha256")
    if known.get("validation") is not None and not isinstance(known["validation"], dict):
        raise ValueError(f"engines[{i}].validation is not a JSON object")
    return EngineEntry(**known)
