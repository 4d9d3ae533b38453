"""Opening a bundle on a device: check it completely, unpack it (into the cache or a folder of your choice), and give
a runtime the paths and facts it needs. Needs only numpy (Pillow to classify); never torch or onnx.

A bundle is untrusted until checked: every member is hashed against manifest.json while it is written
(`archive.read_bundle`), every path the manifest names is a listed, hashed member and every field holds what it may
(`BundleManifest.from_dict`), and the parts agree with each other (`consistency`, run when a `Bundle` is made).
A bundle unpacked into the cache earlier is used again only when the manifest in the cache is byte for byte the
one inside the archive (whose sha256 names the cache folder) and every file still matches it.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VanexportError
from ..files import cache_folder, folder_lock, sha256_file
from ..formats.bundle_manifest import MANIFEST, BundleManifest, EngineEntry
from ..formats.engine_manifest import EngineManifest, parse_manifest
from ..progress import as_progress
from .archive import FolderTaken, UnsafeBundle, discard_folder, extract_verified, verify_tree
from .consistency import check_unpacked


@dataclass
class BundledEngine:
    """A plan in an unpacked bundle: its bundle entry, where it lies, and its own manifest."""

    entry: EngineEntry
    plan_path: Path
    manifest: EngineManifest


@dataclass
class Bundle:
    """An unpacked, checked bundle: its folder and manifest, with the paths a runtime needs. Making one checks that
    its parts agree (consistency.InconsistentBundle, an UnsafeBundle, otherwise): `checks` says what was checked."""

    root: Path
    manifest: BundleManifest
    source: str = ""
    checks: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.checks = check_unpacked(self.root, self.manifest, self.source)

    def file(self, name: str) -> Path:
        return self.root / name

    @property
    def variant(self) -> str:
        return self.manifest.model.variant

    @property
    def num_classes(self) -> int:
        return self.manifest.model.num_classes

    @property
    def preprocessing(self):
        from ..model.variants import Preprocessing

        return Preprocessing.from_dict(self.manifest.preprocessing)

    @property
    def static_batch(self) -> int | None:
        return self.manifest.io_input.static_batch

    @property
    def labels(self) -> list[str]:
        from ..formats.fields import class_names

        return class_names(self.file(self.manifest.labels.file).read_text(encoding="utf-8"))

    @property
    def precisions(self) -> list[str]:
        return self.manifest.precisions

    @property
    def random_weights(self) -> bool:
        return bool(self.manifest.model.weights.get("random"))

    def onnx(self, precision: str = "fp32") -> Path:
        entry = self.manifest.model_file(precision)
        if entry is None:
            raise VanexportError(f"the bundle has no {precision.upper()} ONNX file",
                                 f"it has {', '.join(p.upper() for p in self.precisions)}")
        return self.file(entry.file)

    @property
    def engines(self) -> list[BundledEngine]:
        out = []
        for e in self.manifest.engines:
            plan = self.file(e.file)
            manifest = parse_manifest(self.file(e.manifest).read_text(), f"{e.manifest} in {self.source or self.root}")
            out.append(BundledEngine(e, plan, manifest))
        return out

    @property
    def timing_cache(self) -> Path | None:
        name = self.manifest.timing_cache
        return self.file(name) if name else None

    def _check(self):
        return np.load(self.file(self.manifest.check.file), allow_pickle=False)

    def check_pixels(self) -> tuple[np.ndarray, list[str]]:
        """The check images as 8-bit crops (N, H, W, 3), and their names."""
        with self._check() as z:
            return z["pixels"], [str(n) for n in z["names"]]

    def check_inputs(self) -> np.ndarray:
        """The check images, preprocessed: float32 (N, 3, H, W), ready for the model."""
        from ..data.preprocess import normalize

        return normalize(self.check_pixels()[0], self.preprocessing)

    def expected_logits(self, precision: str = "fp32") -> np.ndarray:
        """The bundled ONNX file's logits on `check_inputs()` (ONNX Runtime CPU, when the bundle was made)."""
        with self._check() as z:
            key = f"logits_{precision}"
            if key not in z:
                raise VanexportError(f"the bundle has no {precision.upper()} check logits", "rebuild the bundle")
            return z[key]


def check_engine_against_bundle(bundle: Bundle, backend, precision: str, max_batch: int = 8,
                                min_batch: int = 1) -> dict:
    """Run `backend` (e.g. a freshly built plan) on the bundle's check images and compare with the bundled ONNX
    file's recorded outputs, with the tolerance of an engine of that precision. No PyTorch needed: this is the
    check `vanexport trt --bundle` records with an engine it builds on the device."""
    from ..check import metrics
    from ..check.tolerances import abs_ok, engine_tolerance, verdict_failures
    from ..runtime.batching import run_batched

    tol = engine_tolerance(precision)
    x, reference = bundle.check_inputs(), bundle.expected_logits(precision)
    overall = metrics.compare_logits(run_batched(backend, x, max_batch, min_batch), reference)
    failures = verdict_failures(overall, tol, polygraphy_passed=abs_ok(overall, tol))
    return {"reference": f"bundled {precision} ONNX (ONNX Runtime CPU, recorded)", "precision": precision,
            "tolerance": asdict(tol), "overall": overall, "passed": not failures, "failures": failures}


def _parse(manifest: dict, archive: str) -> BundleManifest:
    try:
        return BundleManifest.from_dict(manifest)
    except ValueError as e:
        raise UnsafeBundle(f"refusing bundle '{archive}': {MANIFEST} {e}",
                           "nothing is used from it; get the bundle again from its source "
                           "(it is damaged or was tampered with)") from None


def _archive_manifest_bytes(path: Path) -> bytes | None:
    """manifest.json as it lies inside the archive (the first member of a bundle written by vanexport)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name == MANIFEST and member.isfile():
                    return tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError):
        return None
    return None


def _cached(path: Path, target: Path) -> BundleManifest | None:
    """The bundle unpacked earlier into `target`, if it is still exactly what the archive holds."""
    manifest_file = target / MANIFEST
    if not manifest_file.is_file():
        return None
    cached = manifest_file.read_bytes()
    if cached != _archive_manifest_bytes(path):
        return None
    try:
        manifest = json.loads(cached)
        parsed = BundleManifest.from_dict(manifest)
    except ValueError:
        return None
    return None if verify_tree(target, manifest) else parsed


def open_bundle(path: str | os.PathLike, dest: str | os.PathLike | None = None, progress=None) -> Bundle:
    """Check a bundle and unpack it: into `dest` (a new folder), or by default into the cache, keyed by the
    archive's sha256 (reused, after re-checking it against the archive, when the same bundle is opened again).
    `progress` (see vanexport.progress) counts the bytes checked."""
    path = Path(path)
    if dest is not None:
        manifest = extract_verified(path, dest, progress)
        try:
            return Bundle(Path(dest), _parse(manifest, str(path)), str(path))
        except UnsafeBundle:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    if not path.is_file():
        raise VanexportError(f"bundle '{path}' not found", "pass a .tar.gz made by `vanexport bundle`")
    bundles = cache_folder("bundles")
    target = bundles / sha256_file(path)[:24]
    # One process at a time checks and unpacks: the others wait, then check and reuse its copy.
    with folder_lock(bundles, lambda: as_progress(progress).step("waiting for another vanexport unpacking into "
                                                                 f"{bundles}")):
        cached = _cached(path, target)
        if cached is not None:
            return Bundle(target, cached, str(path))
        discard_folder(target)  # absent, cut short, changed since it was unpacked, or not this archive's
        try:
            manifest = extract_verified(path, target, progress)
        except FolderTaken:  # another process finished first (where locks do not work): its copy, once checked
            if (cached := _cached(path, target)) is None:
                raise
            return Bundle(target, cached, str(path))
    try:
        return Bundle(target, _parse(manifest, str(path)), str(path))
    except UnsafeBundle:
        shutil.rmtree(target, ignore_errors=True)
        raise


def unpack_bundle(path: str | os.PathLike, dest: str | os.PathLike, progress=None) -> dict:
    """`vanexport unpack`: check a bundle and unpack it into the new folder `dest`; return a short record."""
    bundle = open_bundle(path, dest, progress)
    manifest = bundle.manifest
    return {"bundle": str(path), "folder": str(dest), "schema_version": manifest.schema_version,
            "variant": manifest.model.variant, "files": {k: asdict(v) for k, v in manifest.files.items()},
            "verified": True, "checks": bundle.checks}

