"""The one comparison path: any backend and the PyTorch reference run on the same batches; Polygraphy's Comparator
gives the tolerance verdict, `metrics` adds what a user needs to trust it (cosine, top-1/top-5 agreement)."""
from __future__ import annotations

import collections
import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np

from ..logs import quiet_polygraphy
from . import metrics
from .inputs import InputGroup
from .tolerances import Tolerance, verdict_failures


@dataclass
class ValidationReport:
    model: str
    precision: str
    reference: str
    tolerance: dict
    groups: list[dict]
    overall: dict
    polygraphy_passed: bool
    passed: bool
    failures: list[str] = field(default_factory=list)
    accuracy: dict | None = None  # top-1 against labels: reference, candidate, drop in points
    notes: list[str] = field(default_factory=list)
    runtime: str = "ONNX Runtime CPU"  # what ran the candidate

    def to_dict(self) -> dict:
        return asdict(self)


def compare(candidate, reference_model, groups: list[InputGroup], tolerance: Tolerance, model: str, *,
            output_name: str = "logits", reference_label: str = "pytorch", runtime: str = "ONNX Runtime CPU",
            progress=None, description: str = "comparing with PyTorch FP32") -> ValidationReport:
    """Run `candidate` (a Backend: ONNX Runtime, TensorRT, ...) and the PyTorch `reference_model` on every batch of
    `groups`; compare their outputs through Polygraphy (max abs/rel against atol/rtol) and our metrics.
    `progress` counts the inputs compared (vanexport.progress)."""
    from polygraphy.comparator import Comparator, IterationResult, RunResults, SimpleCompareFunc

    from ..progress import as_progress
    from ..runtime.torch_backend import TorchBackend

    reference = ReferenceOutputs(TorchBackend(reference_model))
    batches = [b for g in groups for b in g.batches]
    ours, theirs = [], []
    with as_progress(progress).task(description, sum(len(b) for b in batches), "inputs") as task:
        for b in batches:
            ours.append(IterationResult({output_name: candidate(b)}, runner_name=candidate.name))
            theirs.append(IterationResult({output_name: reference(b)}, runner_name=reference_label))
            task.advance(len(b))
    results = RunResults()
    results.append((candidate.name, ours))
    results.append((reference_label, theirs))
    with quiet_polygraphy():
        compare_func = SimpleCompareFunc(atol=tolerance.atol, rtol=tolerance.rtol, check_error_stat="max")
        polygraphy_passed = bool(Comparator.compare_accuracy(results, compare_func=compare_func))
    candidate_out = [it[output_name] for it in results[0][1]]
    reference_out = [it[output_name] for it in results[1][1]]
    return report(model, candidate_out, reference_out, groups, tolerance, polygraphy_passed, reference_label, runtime)


class ReferenceOutputs:
    """PyTorch's outputs, computed once per weights and batch in a process. The checks of a chain (the FP32 export,
    its FP16 and INT8 conversions, a plan; the three models of a bundle) run the same inputs through the same
    reference; PyTorch eager is the slowest runner there, and its outputs depend on nothing else. The key hashes the
    weights' values and the batch's bytes: a model changed in place, or other inputs, are computed afresh."""

    LIMIT_BYTES = 64 << 20  # of outputs kept (VAN-b0, 1000 classes: 2,000 batches of 8), least recently used out
    _kept: collections.OrderedDict = collections.OrderedDict()  # (weights, batch) -> read-only outputs
    _kept_bytes = 0

    def __init__(self, torch_backend):
        from ..model.checkpoints import weights_sha256

        self.run = torch_backend
        self.weights = weights_sha256(torch_backend.model.state_dict())  # 13 ms for b0, a fifth of one batch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch)
        key = (self.weights, batch.dtype.str, batch.shape, hashlib.sha256(batch).hexdigest())
        kept = ReferenceOutputs._kept
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
        out = self.run(batch)
        out.setflags(write=False)  # shared by every check that asks again
        kept[key] = out
        ReferenceOutputs._kept_bytes += out.nbytes
        while ReferenceOutputs._kept_bytes > self.LIMIT_BYTES:
            ReferenceOutputs._kept_bytes -= kept.popitem(last=False)[1].nbytes
        return out

    @classmethod
    def forget(cls) -> None:
        cls._kept.clear()
        cls._kept_bytes = 0


def report(model: str, candidate_out: list, reference_out: list, groups: list[InputGroup], tolerance: Tolerance,
           polygraphy_passed: bool, reference_label: str, runtime: str) -> ValidationReport:
    """Per-group metrics and the verdict from the outputs of every batch, in the order of `groups`."""
    rows, labelled, i = [], [], 0
    for g in groups:
        n = len(g.batches)
        cand = np.concatenate(candidate_out[i:i + n])[:g.size]
        ref = np.concatenate(reference_out[i:i + n])[:g.size]
        rows.append({"group": g.label, **metrics.compare_logits(cand, ref)})
        if g.labels is not None:
            labelled.append((cand, ref, g.labels))
        i += n
    overall = metrics.merge(rows)
    accuracy = metrics.accuracy(labelled) if labelled else None
    failures = verdict_failures(overall, tolerance, polygraphy_passed, accuracy)
    notes = []
    if tolerance.max_accuracy_drop is not None and accuracy is None:
        notes.append("accuracy drop not checked: the images have no class labels (use class subfolders)")
    return ValidationReport(model, tolerance.precision, reference_label, asdict(tolerance), rows, overall,
                            polygraphy_passed, not failures, failures, accuracy, notes, runtime)
