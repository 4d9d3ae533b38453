"""Whether a bundle's parts belong together: its labels file, its manifest and every ONNX file it holds.

Each part can be intact (its sha256 matches manifest.json) and still not fit the others: 999 names for 1000
classes shift every label by one; a 10-class ONNX file in a bundle that says 1000 classes answers indices 0-9 under
ImageNet's names; an ONNX file reading its weights from a file outside the bundle makes the runtime open that file.
So before any part is used (`predict`, `triton`, `deepstream`, `trt --bundle`, `unpack`, `inspect`), the facts
each file states about itself are compared with the manifest's. Needs no onnx and no runtime: the ONNX files are
read at the protobuf wire level (formats/onnx_wire.py), front to back, so a member of the archive can be checked
while it is decompressed.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from pathlib import Path

from ..errors import VanexportError
from ..formats import fields
from ..formats.bundle_manifest import BundleManifest
from ..formats.onnx_metadata import ModelMetadata
from ..formats.onnx_wire import OnnxFacts, WireError, read_facts
from .archive import UnsafeBundle, check_member_name

HINT = "nothing is used from it; rebuild the bundle with `vanexport bundle` (its parts do not belong together)"
# What `inspect` lists as verified, in the order the checks run.
CHECKS = (
    "every member's size and sha256 against manifest.json",
    "every path the manifest names is a listed member",
    "every manifest field holds what it may (variant, tensor names, preprocessing ranges, one-line text)",
    "labels: one name per line, as many as model.num_classes",
    "each ONNX file: one output of (batch, model.num_classes)",
    "each ONNX file's metadata (variant, classes, weights sha256, input size, preprocessing, precision, tensor "
    "names) agrees with the manifest",
    "each ONNX file's external data is a listed member beside it",
)


class InconsistentBundle(UnsafeBundle):
    """A bundle whose parts are each intact but do not agree with each other (so nothing of it is kept either)."""


def _labels_size_ok(manifest: BundleManifest) -> None:
    """A labels file longer than the most names a model may have is refused before it is read."""
    size, cap = manifest.files[manifest.labels.file].size, fields.MAX_CLASSES * (fields.MAX_CLASS_NAME_CHARS * 4 + 1)
    if size > cap:
        raise ValueError(f"labels.file '{manifest.labels.file}' is {size} bytes long, more than "
                         f"{fields.MAX_CLASSES} names can be")


def check_parts(manifest: BundleManifest, labels: bytes, onnx: dict[str, OnnxFacts]) -> list[str]:
    """Compare the labels file's bytes and the facts of each bundled ONNX file (by member name) with the manifest.
    ValueError naming the field that disagrees; the checks made otherwise."""
    _check_labels(manifest, labels)
    for i, entry in enumerate(manifest.models):
        _check_onnx(manifest, i, onnx[entry.file])
    return list(CHECKS)


def check_unpacked(root: Path, manifest: BundleManifest, source: str = "") -> list[str]:
    """`check_parts` of a bundle unpacked (and hash-checked) into `root`; InconsistentBundle when they disagree."""
    facts = {}
    try:
        _labels_size_ok(manifest)
        for entry in manifest.models:
            path = root / entry.file
            with open(path, "rb") as f:
                facts[entry.file] = _facts(f, os.fstat(f.fileno()).st_size, entry.file)
        return check_parts(manifest, (root / manifest.labels.file).read_bytes(), facts)
    except ValueError as e:
        raise _refusal(source or str(root), e) from None


def check_archive(archive: Path, manifest: BundleManifest) -> list[str]:
    """`check_parts` of a bundle read straight from its archive (already checked by archive.read_bundle), each
    part hashed again as it is read; InconsistentBundle when the parts disagree."""
    wanted = {manifest.labels.file, *(e.file for e in manifest.models)}
    labels, facts, seen = b"", {}, set()
    try:
        _labels_size_ok(manifest)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = check_member_name(member.name, str(archive))  # as read_bundle names it (./a -> a)
                if name not in wanted or not member.isfile():
                    continue
                reader = _HashingReader(tar.extractfile(member))
                if name == manifest.labels.file:
                    labels = reader.read(member.size)
                else:
                    facts[name] = _facts(reader, member.size, name)
                if reader.rest_sha256() != manifest.files[name].sha256:
                    raise VanexportError(f"'{name}' in '{archive.name}' changed while it was read",
                                         "inspect the bundle again; get it from its source if this repeats")
                seen.add(name)
        missing = wanted - seen
        if missing:
            raise VanexportError(f"'{archive.name}' lacks {', '.join(sorted(missing))}", "rebuild the bundle")
        return check_parts(manifest, labels, facts)
    except ValueError as e:
        raise _refusal(str(archive), e) from None


def _refusal(bundle: str, e: ValueError) -> InconsistentBundle:
    return InconsistentBundle(f"refusing bundle '{bundle}': {e}", HINT)


def _facts(f, size: int, name: str) -> OnnxFacts:
    try:
        return read_facts(f, size)
    except (WireError, UnicodeDecodeError) as e:
        raise ValueError(f"'{name}' is not a readable ONNX file ({e})") from None


def _shown(value) -> str:
    """A value in an error line: a string quoted (escapes visible), anything else as it is, never long."""
    return repr(value[:80]) if isinstance(value, str) else str(value)[:200]


class _HashingReader:
    """A forward-only file-like object over a stream that hashes every byte that passes, read or skipped."""

    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data

    def seek(self, n: int, whence: int) -> None:
        assert whence == os.SEEK_CUR and n >= 0, "forward skips only"
        while n > 0 and (block := self.read(min(n, 1 << 20))):
            n -= len(block)

    def rest_sha256(self) -> str:
        """The sha256 of the whole stream, after reading what is left of it."""
        while self.read(1 << 20):
            pass
        return self.h.hexdigest()


def _check_labels(m: BundleManifest, data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"labels.file '{m.labels.file}' is not UTF-8 text") from None
    names = fields.class_names(text, f"labels.file '{m.labels.file}'")
    if len(names) != m.labels.count:
        raise ValueError(f"labels.file '{m.labels.file}' holds {len(names)} names but labels.count and "
                         f"model.num_classes are {m.labels.count}")


def _check_onnx(m: BundleManifest, i: int, facts: OnnxFacts) -> None:
    entry, where = m.models[i], f"models[{i}] ('{m.models[i].file}')"
    n = m.model.num_classes
    if len(facts.outputs) != 1:
        raise ValueError(f"{where} has {len(facts.outputs)} outputs, not one")
    (output, dims), = facts.outputs.items()
    if not dims or len(dims) != 2 or dims[1] != n:
        raise ValueError(f"{where} answers {dims[1] if dims and len(dims) == 2 else dims} classes (output shape "
                         f"{dims}) but model.num_classes is {n}")
    try:
        meta = ModelMetadata.from_props(facts.metadata)
    except VanexportError as e:
        raise ValueError(f"{where}: {e.problem}") from None
    pre = m.preprocessing
    transform = ("input_size", "crop_pct", "interpolation", "mean", "std")
    agree = (  # what the file says about itself, and what the manifest says
        ("metadata variant", meta.variant, "model.variant", m.model.variant),
        ("metadata num_classes", meta.num_classes, "model.num_classes", n),
        ("metadata weights_sha256", meta.weights_sha256, "model.weights.sha256",
         m.model.weights.get("sha256", meta.weights_sha256)),
        ("metadata input size", meta.img_size, "preprocessing.input_size", pre["input_size"]),
        ("metadata preprocessing", {k: meta.preprocessing.get(k) for k in transform}, "preprocessing",
         {k: pre.get(k) for k in transform}),
        ("metadata precision", meta.precision, f"models[{i}].precision", entry.precision),
        ("metadata input_name", meta.input_name, "io.input.name", m.io_input.name),
        ("metadata output_name", meta.output_name, "io.output.name", m.io_output.name),
        ("the output", output, "io.output.name", m.io_output.name),
    )
    for what, theirs, field_name, ours in agree:
        if theirs != ours:
            raise ValueError(f"{where} has {what} {_shown(theirs)} but {field_name} is {_shown(ours)}")
    if m.io_input.name not in facts.inputs:
        raise ValueError(f"{where} has no input named io.input.name {m.io_input.name!r}")
    folder = posixpath.dirname(entry.file)
    for location in facts.external_data:
        try:
            fields.path_part(location, "its external data file")
        except ValueError as e:
            raise ValueError(f"{where} reads weights from outside the bundle: {e}") from None
        member = posixpath.join(folder, location)
        if member not in m.files:
            raise ValueError(f"{where} reads weights from '{location}', which is not a listed file beside it")
