"""Where does INT8 (or FP16) error come from? Convert one module group at a time (or all but one), measure each
against the FP32 model on held-out images, rank the groups, and find the exclusion set that meets the threshold.

Everything runs in ONNX Runtime CPU against the FP32 ONNX file itself (it matches PyTorch to ~1e-6), so no
weights are needed. Calibration runs once (cached like `quantize`); every variant reuses the ranges.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
import numpy as np

from ..check import metrics
from ..check.tolerances import TOLERANCES, passes
from ..errors import VanexportError
from ..files import work_folder
from ..progress import as_progress
from ..runtime.batching import run_batched
from . import graph as g

MODES = ("only", "leave-out")


@dataclass
class SensitivityReport:
    model: str
    precision: str  # what is being converted: "int8" or "fp16"
    mode: str  # "only": convert just this group; "leave-out": convert everything but this group
    images: str  # what the groups were measured on
    n_images: int
    depth: int
    tolerance: dict
    baseline: dict  # the whole model converted
    groups: list[dict]  # ranked, worst first: name, regex, nodes, top1_agree, mean_cosine, accuracy_drop
    recommended: list[str]  # regexes for --exclude (INT8) / --keep-fp32 (FP16)
    recommended_result: dict | None  # the model converted with `recommended` left out
    passed: bool  # whether `recommended` brings the model within the tolerance
    calibration: dict | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def sensitivity(onnx_path, calib=None, *, images=None, precision: str = "int8", mode: str = "only", depth: int = 2,
                num_calib: int | None = None, method: str = "entropy", num_images: int | None = None, seed: int = 0,
                progress=None) -> SensitivityReport:
    """Rank the module groups of an FP32 ONNX file by the accuracy converting them costs.

    `calib`: calibration folder or .npz (INT8). `images`: held-out folder to measure on (default: the calib
    folder, which flatters INT8). `depth`: how coarse a group is (1: `/block1.0`, 2: `/block1.0/attn`).
    `progress`: see vanexport.progress (one count per converted variant).
    """
    from ..data.images import label_indices, load_folder
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend
    from .common import copy_model, load_fp32_source
    from .fp16 import fp16_model
    from .int8 import Calibrator

    p = as_progress(progress)
    t0 = time.perf_counter()
    if precision not in ("int8", "fp16"):
        raise VanexportError(f"unknown precision '{precision}'", "choose int8 or fp16")
    if mode not in MODES:
        raise VanexportError(f"unknown mode '{mode}'", f"choose one of {', '.join(MODES)}")
    if depth < 1:
        raise VanexportError(f"--depth {depth} is not positive", "pass --depth 1 (blocks) or 2 (attn/mlp of a block)")
    if precision == "int8" and calib is None:
        raise VanexportError("INT8 sensitivity needs calibration data", "pass --calib DIR (a folder of images or an .npz)")
    proto, meta, src_sha = load_fp32_source(onnx_path)
    notes = []
    folder = images or (calib if calib is not None and Path(calib).is_dir() else None)
    if folder is None:
        raise VanexportError("no images to measure on", "pass --images DIR (held-out images, ideally with class subfolders)")
    if images is None:
        notes.append("measured on the calibration images (pass --images with held-out images for an honest ranking)")
    data = load_folder(folder, meta.preprocess, limit=num_images, shuffle_seed=seed if num_images else None,
                       progress=p)
    labels = label_indices(data.labels, meta.num_classes)
    size = meta.static_batch or 32

    def run(path) -> np.ndarray:
        # idle threads sleep: dozens of short-lived sessions on a shared machine, throughput matters
        return run_batched(OnnxRuntimeBackend(path, spinning=False), data.array, size, meta.static_batch or 1)

    p.step(f"FP32 reference on {len(data.array)} images from '{folder}'")
    reference = run(onnx_path)
    tol = TOLERANCES[precision]

    def score(logits) -> dict:
        row = metrics.compare_logits(logits, reference)
        row = {k: row[k] for k in ("top1_agree", "top5_agree", "min_cosine", "mean_cosine", "max_abs_err",
                                   "nonfinite_reference", "nonfinite_candidate")}
        if labels is not None:
            ref_acc, acc = float((reference.argmax(1) == labels).mean()), float((logits.argmax(1) == labels).mean())
            row.update(reference_accuracy=ref_acc, accuracy=acc, accuracy_drop=100 * (ref_acc - acc))
        row["passed"] = passes(row, tol)
        return row

    if precision == "int8":
        g.constants_to_initializers(proto)
        op_types = g.WEIGHTED_OPS
    else:
        op_types = None
    groups = g.module_groups(proto.graph, depth, op_types)
    if not groups:
        raise VanexportError("no named module groups found in the graph",
                             "export the model with `vanexport onnx` (TorchScript exporter names nodes by module)")
    calibration = None
    with work_folder() as tmp:
        if precision == "int8":
            calibrator = Calibrator(proto, meta, src_sha, calib, num_calib, method, seed,
                                    cache_folder=Path(onnx_path).parent, cache_stem=Path(onnx_path).stem + "_int8")

        def convert(left_out: list[str]) -> np.ndarray:
            path = Path(tmp) / "candidate.onnx"
            if precision == "int8":
                nonlocal calibration
                # calibration (or the cache read) happens on the first call only: report that one
                calibration = calibrator.quantize(path, left_out, p if calibration is None else None)
            else:
                import onnx

                keep = g.select_nodes(proto.graph, ["LayerNormalization"]) + left_out
                converted = fp16_model(copy_model(proto), keep)
                onnx.save(converted, str(path))
            return run(path)

        all_nodes = [n for names in groups.values() for n in names]
        p.step(f"{precision.upper()} of the whole model")
        baseline = score(convert([]))
        ranked = []
        how = "only" if mode == "only" else "all but"
        with p.task(f"{precision.upper()} {how} each of {len(groups)} groups", len(groups), "groups") as task:
            for name, nodes in groups.items():
                task.describe(f"{precision.upper()} {how} {name}")
                inside = set(nodes)
                left_out = [n for n in all_nodes if n not in inside] if mode == "only" else nodes
                row = score(convert(left_out))
                ranked.append({"name": name, "regex": g.group_regex(name), "nodes": len(nodes), **row,
                               "cost": _cost(row, baseline, mode)})
                task.advance()
        ranked.sort(key=lambda r: tuple(r["cost"].values()), reverse=True)

        recommended, result = [], baseline
        for row in ranked:
            if result["passed"] or not any(v > 0 for v in row["cost"].values()):
                break
            recommended.append(row["name"])
            left_out = [n for grp in recommended for n in groups[grp]]
            p.step(f"{precision.upper()} without {len(recommended)} group(s): {', '.join(recommended)}")
            result = score(convert(left_out))
    for row in ranked:
        row.pop("passed", None)
    notes += (calibration or {}).get("warnings", [])  # too few calibration images, unreadable ones
    return SensitivityReport(str(onnx_path), precision, mode, str(folder), len(data.array), depth, asdict(tol),
                             baseline, ranked, [g.group_regex(r) for r in recommended],
                             result if recommended else None, bool(result["passed"]),
                             {k: v for k, v in (calibration or {}).items() if k != "warnings"} or None,
                             round(time.perf_counter() - t0, 2), notes)


def _cost(row: dict, baseline: dict, mode: str) -> dict:
    """What converting a group costs, in the order groups are ranked: accuracy points (when labels exist),
    then top-1 agreement, then the cosine gap. "only": the loss with just this group converted;
    "leave-out": what leaving just this group unconverted wins back from the whole-model baseline."""
    def loss(r):
        return {"accuracy_points": r.get("accuracy_drop", 0.0), "top1_agree": 1.0 - r["top1_agree"],
                "cosine": 1.0 - r["mean_cosine"]}

    here = loss(row)
    if mode == "leave-out":
        base = loss(baseline)
        here = {k: base[k] - here[k] for k in base}
    return {k: round(v, 9) for k, v in here.items()}
