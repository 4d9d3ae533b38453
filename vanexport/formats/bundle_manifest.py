"""manifest.json of a bundle: the typed record, and the checks made before anything it says is used.

A bundle comes from elsewhere, so its manifest is untrusted input. Two levels:
- the envelope (`check_envelope`): format, schema version, and the file list, each member a normalised relative
  path with a sha256 and a size. The archive reader checks every member against it before keeping a byte.
- the whole record (`BundleManifest.from_dict`): every path it names anywhere (labels, ONNX files, engines and
  their manifests, timing cache, check data) must be one of the listed members, so nothing outside the bundle,
  and nothing unhashed, can ever be opened through it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .names import PRECISIONS
from .records import member_path, require, sha256_hex

FORMAT = "vanexport-bundle"
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
        if not isinstance(d["shape"], list) or len(d["shape"]) < 2:
            raise ValueError(f"{what} has no valid shape")
        return cls(str(d["name"]), str(d["dtype"]), list(d["shape"]), d.get("layout"), d.get("meaning"))

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
        if not isinstance(model["num_classes"], int) or model["num_classes"] < 1:
            raise ValueError("model.num_classes is not a positive integer")
        io = require(d["io"], ("input", "output"), "io")
        labels = require(d["labels"], ("file", "count"), "labels")
        check = require(d["check"], ("file",), "check")
        if not isinstance(d["models"], list) or not d["models"] or not isinstance(d["engines"], list):
            raise ValueError("models / engines are not lists (a bundle has at least its FP32 ONNX file)")
        if not isinstance(d["preprocessing"], dict):
            raise ValueError("preprocessing is not a JSON object")
        m = cls(
            model=ModelInfo(str(model["variant"]), model["num_classes"], dict(model.get("weights") or {}),
                            str(model.get("family", "VAN"))),
            preprocessing=dict(d["preprocessing"]),
            io_input=TensorIO.from_dict(io["input"], "io.input"),
            io_output=TensorIO.from_dict(io["output"], "io.output"),
            labels=LabelsEntry(labels["file"], int(labels["count"]), str(labels.get("source", ""))),
            models=[_onnx_entry(e) for e in d["models"]],
            engines=[_engine_entry(e) for e in d["engines"]],
            check=CheckEntry(check["file"], [str(n) for n in check.get("images") or []], str(check.get("logits", ""))),
            files=files, timing_cache=d.get("timing_cache"), created_at=str(d.get("created_at", "")),
            created_by=dict(d.get("created_by") or {}), history=list(d.get("history") or []),
            schema_version=d["schema_version"], format=d["format"])
        m._check_paths()
        return m

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


def _onnx_entry(e) -> OnnxEntry:
    require(e, ("file", "precision", "sha256"), "a models entry")
    if e["precision"] not in PRECISIONS:
        raise ValueError(f"a models entry has the unknown precision {e['precision']!r}")
    return OnnxEntry(e["file"], e["precision"], sha256_hex(e["sha256"], "a models entry's sha256"),
                     dict(e.get("made_by") or {}), e.get("validation"))


def _engine_entry(e) -> EngineEntry:
    require(e, ("file", "manifest", "sha256", "source", "precision"), "an engines entry")
    if e["precision"] not in PRECISIONS:
        raise ValueError(f"an engines entry has the unknown precision {e['precision']!r}")
    known = {k: v for k, v in e.items() if k in EngineEntry.__dataclass_fields__}
    known["sha256"] = sha256_hex(e["sha256"], "an engines entry's sha256")
    return EngineEntry(**known)
