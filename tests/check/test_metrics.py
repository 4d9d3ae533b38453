"""The numbers behind every verdict (check/metrics.py) and the verdicts themselves (check/tolerances.py, the report
in check/compare.py, validate's --atol), on cases small enough to compute by hand."""
import math

import numpy as np
import pytest

from vanexport.check import metrics
from vanexport.check.compare import report
from vanexport.check.inputs import InputGroup
from vanexport.check.tolerances import (ENGINE_FP32, TOLERANCES, Tolerance, abs_ok, engine_tolerance, passes,
                                        verdict_failures, with_overrides)

# Three images, six classes. Row 0: the candidate moves one logit by 0.5, same class. Row 1: anti-correlated (the
# candidate is the reference negated). Row 2: the candidate's top-1 is another class, the reference's is its second.
REFERENCE = np.array([[0, 1, 2, 3, 4, 5],
                      [5, 4, 3, 2, 1, 0],
                      [1, 0, 0, 0, 0, 0]], np.float32)
CANDIDATE = np.array([[0, 1, 2, 3, 4, 5.5],
                      [-5, -4, -3, -2, -1, 0],
                      [0.9, 1, 0, 0, 0, 0]], np.float32)
COSINES = [57.5 / math.sqrt(55 * 60.25), -1.0, 0.9 / math.sqrt(1.81)]  # dot / (|ref| |cand|), by hand


def test_topk_is_by_value_descending_and_stable_on_ties():
    np.testing.assert_array_equal(metrics.topk(np.array([[1, 3, 2], [5, 5, 1]], np.float32), 2), [[1, 2], [0, 1]])


def test_ties_among_a_thousand_classes_go_to_the_lowest_index_as_argmax():
    """Quantized logits tie often; an unstable sort would pick any of the tied classes, so two runs that agree
    would count as disagreeing. argmax (the first maximum) is the reference."""
    logits = np.random.default_rng(0).integers(0, 3, (8, 1000)).astype(np.float32)
    np.testing.assert_array_equal(metrics.topk(logits, 1)[:, 0], logits.argmax(1))
    first_five = [np.flatnonzero(row == row.max())[:5] for row in logits]
    np.testing.assert_array_equal(metrics.topk(logits, 5), first_five)


@pytest.mark.parametrize("a, b, expected", [
    ([1, 2, 3], [1, 2, 3], 1.0),
    ([1, 2], [2, 4], 1.0),  # scale does not matter
    ([1, 0], [0, 1], 0.0),
    ([1, 2, 3], [-1, -2, -3], -1.0),  # anti-correlated
    ([3, 4], [4, 3], 24 / 25),
    ([0, 0], [0, 0], 1.0),  # two zero rows agree
    ([0, 0], [1, 2], 0.0),  # a zero row shares no direction with another
    ([1, 2], [0, 0], 0.0),
    ([0.01, 0], [0.02, 0], 1.0),  # tiny logits: norms below 1
])
def test_cosine_by_hand(a, b, expected):
    got = metrics.cosine(np.array([a], np.float32), np.array([b], np.float32))
    assert got.shape == (1,) and got[0] == pytest.approx(expected, abs=1e-12)


def test_compare_logits_by_hand():
    m = metrics.compare_logits(CANDIDATE, REFERENCE)
    assert m["n"] == 3
    assert m["max_abs_err"] == pytest.approx(10.0)  # row 1, class 0: -5 vs 5
    assert m["mean_abs_err"] == pytest.approx((0.5 + 30 + 1.1) / 18)
    assert m["max_rel_err"] == pytest.approx(10.0 / 5.0)  # relative to the largest reference logit
    assert m["min_cosine"] == pytest.approx(-1.0)  # the worst image, not the average
    assert m["mean_cosine"] == pytest.approx(sum(COSINES) / 3)
    assert m["top1_agree"] == pytest.approx(1 / 3)  # row 0 only
    assert m["top5_agree"] == pytest.approx(2 / 3)  # row 2's reference class is the candidate's second
    assert (m["nonfinite_reference"], m["nonfinite_candidate"]) == (0, 0)


def test_compare_logits_of_identical_outputs():
    m = metrics.compare_logits(REFERENCE, REFERENCE)
    assert (m["max_abs_err"], m["mean_abs_err"], m["max_rel_err"]) == (0.0, 0.0, 0.0)
    assert m["min_cosine"] == pytest.approx(1.0) and m["top1_agree"] == m["top5_agree"] == 1.0


def test_relative_error_is_against_the_largest_reference_logit_however_small():
    small = metrics.compare_logits(np.array([[0.25, 0.0]], np.float32), np.array([[0.5, 0.0]], np.float32))
    assert small["max_rel_err"] == pytest.approx(0.25 / 0.5)
    zero = metrics.compare_logits(np.array([[1e-6, 0.0]], np.float32), np.zeros((1, 2), np.float32))
    assert zero["max_rel_err"] == pytest.approx(1e-6 / 1e-12, rel=1e-3)  # huge and finite: never passes an rtol


def test_top5_with_fewer_than_five_classes():
    m = metrics.compare_logits(np.array([[0, 1, 2]], np.float32), np.array([[2, 1, 0]], np.float32))
    assert m["top1_agree"] == 0.0 and m["top5_agree"] == 1.0  # all three classes are in the "top-5"


@pytest.mark.filterwarnings("error")  # and quietly: a NaN model's check prints its verdict, not numpy's warnings
def test_rows_with_nan_or_inf_are_counted_on_each_side():
    ref = REFERENCE.copy()
    cand = CANDIDATE.copy()
    ref[2, 1] = np.nan
    cand[0, 0], cand[1, 3] = np.inf, np.nan
    m = metrics.compare_logits(cand, ref)
    assert (m["nonfinite_reference"], m["nonfinite_candidate"]) == (1, 2)
    ref[0, 5] = -np.inf
    assert metrics.compare_logits(cand, ref)["nonfinite_reference"] == 2  # rows, not values or "any at all"


def test_merge_weights_averages_by_images_and_keeps_extremes():
    a = metrics.compare_logits(CANDIDATE[:1], REFERENCE[:1])
    b = metrics.compare_logits(CANDIDATE[1:], REFERENCE[1:])
    b["nonfinite_candidate"] = 2
    m = metrics.merge([a, b])
    assert m["n"] == 3
    assert m["max_abs_err"] == b["max_abs_err"] == pytest.approx(10.0)
    assert m["max_rel_err"] == pytest.approx(max(a["max_rel_err"], b["max_rel_err"]))
    assert m["min_cosine"] == pytest.approx(-1.0)
    whole = metrics.compare_logits(CANDIDATE, REFERENCE)
    for key in ("mean_abs_err", "mean_cosine", "top1_agree", "top5_agree"):
        assert m[key] == pytest.approx(whole[key]), key  # weighted by images: the same as all at once
    assert m["top1_agree"] == pytest.approx(1 / 3)  # not the mean of 1.0 and 0.0
    assert (m["nonfinite_reference"], m["nonfinite_candidate"]) == (0, 2)


def test_accuracy_drop_by_hand_over_groups():
    labels = np.array([5, 0, 0])  # the reference is right on all three; the candidate on row 0 only
    acc = metrics.accuracy([(CANDIDATE[:1], REFERENCE[:1], labels[:1]), (CANDIDATE[1:], REFERENCE[1:], labels[1:])])
    assert acc == {"n": 3, "reference": 1.0, "candidate": pytest.approx(1 / 3),
                   "drop_points": pytest.approx(100 * 2 / 3)}
    gain = metrics.accuracy([(REFERENCE, CANDIDATE, labels)])  # swapped: the candidate does better, a negative drop
    assert gain["drop_points"] == pytest.approx(-100 * 2 / 3)


# ---- tolerances and verdicts ----------------------------------------------------------------------------------

def overall(**changes) -> dict:
    """Metrics of a near-perfect candidate, with `changes`."""
    base = {"n": 400, "max_abs_err": 1e-5, "mean_abs_err": 1e-6, "max_rel_err": 1e-6, "min_cosine": 1.0,
            "mean_cosine": 1.0, "top1_agree": 1.0, "top5_agree": 1.0, "nonfinite_reference": 0,
            "nonfinite_candidate": 0}
    return {**base, **changes}


def test_fp32_is_judged_by_polygraphy_max_abs_only():
    tol = TOLERANCES["fp32"]
    assert verdict_failures(overall(), tol, polygraphy_passed=True) == []
    failures = verdict_failures(overall(max_abs_err=3e-4, top1_agree=0.5, min_cosine=0.1), tol, False)
    assert failures == ["max abs error 3.00e-04 > atol 1e-04"]  # agreement is not part of the FP32 verdict


@pytest.mark.parametrize("precision", ["fp16", "int8", "bf16"])
def test_agreement_precisions_ignore_max_abs(precision):
    assert verdict_failures(overall(max_abs_err=50.0), TOLERANCES[precision], polygraphy_passed=False) == []


@pytest.mark.parametrize("precision", ["fp16", "int8", "bf16"])
def test_top1_agreement_bound_is_inclusive(precision):
    tol = TOLERANCES[precision]
    assert verdict_failures(overall(top1_agree=tol.min_top1_agree), tol, True) == []
    below = verdict_failures(overall(top1_agree=tol.min_top1_agree - 0.0025), tol, True)
    assert len(below) == 1 and below[0].startswith("top-1 agreement")
    assert passes(overall(top1_agree=tol.min_top1_agree), tol)
    assert not passes(overall(top1_agree=tol.min_top1_agree - 0.0025), tol)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cosine_bound_is_on_the_worst_image_and_inclusive(precision):
    tol = TOLERANCES[precision]
    assert verdict_failures(overall(min_cosine=tol.min_cosine, mean_cosine=1.0), tol, True) == []
    assert passes(overall(min_cosine=tol.min_cosine), tol)
    worst = overall(min_cosine=tol.min_cosine - 1e-6, mean_cosine=1.0)  # one bad image, a perfect average
    assert [f.split(" ")[0] for f in verdict_failures(worst, tol, True)] == ["cosine"]
    assert not passes(worst, tol)
    anti = overall(min_cosine=-1.0)  # an anti-correlated image fails whatever the others do
    assert verdict_failures(anti, tol, True) and not passes(anti, tol)


def test_int8_accuracy_drop_only_with_labels_and_inclusive():
    tol = TOLERANCES["int8"]
    assert tol.min_cosine is None  # INT8 is judged by agreement and accuracy, not cosine
    assert verdict_failures(overall(min_cosine=0.5), tol, True) == []
    at = {"n": 400, "reference": 0.99, "candidate": 0.98, "drop_points": tol.max_accuracy_drop}
    assert verdict_failures(overall(), tol, True, accuracy=at) == []
    over = {**at, "drop_points": tol.max_accuracy_drop + 0.25}
    assert verdict_failures(overall(), tol, True, accuracy=over) == ["accuracy drop 1.25 points > 1.0"]
    assert verdict_failures(overall(), tol, True, accuracy=None) == []
    assert passes({**overall(), "accuracy_drop": tol.max_accuracy_drop}, tol)
    assert not passes({**overall(), "accuracy_drop": tol.max_accuracy_drop + 0.25}, tol)
    assert passes(overall(), tol)  # no labels, no drop to check


def test_every_failure_is_reported_not_just_the_first():
    tol = TOLERANCES["fp16"]
    failures = verdict_failures(overall(top1_agree=0.9, min_cosine=0.9), with_overrides(tol, atol=1e-3), False)
    assert [f.split(" ")[0] for f in failures] == ["max", "top-1", "cosine"]


def test_a_nan_reference_is_reported_as_such_not_as_a_mismatch():
    for precision in ("fp32", "fp16", "int8"):
        failures = verdict_failures(overall(nonfinite_reference=3, max_abs_err=float("nan"), min_cosine=float("nan"),
                                            top1_agree=0.0), TOLERANCES[precision], polygraphy_passed=False)
        assert len(failures) == 1 and "reference itself gives NaN/inf logits on 3 of 400 inputs" in failures[0]
    assert not passes(overall(nonfinite_reference=1), TOLERANCES["fp16"])


@pytest.mark.parametrize("precision", ["fp16", "int8", "bf16"])
def test_nan_candidate_fails_even_where_nan_compares_false(precision):
    """NaN < threshold is False: without its own check a NaN cosine would pass the cosine bound."""
    nan_row = overall(nonfinite_candidate=2, min_cosine=float("nan"), mean_cosine=float("nan"))
    failures = verdict_failures(nan_row, TOLERANCES[precision], polygraphy_passed=True)
    assert failures == ["NaN/inf logits on 2 of 400 inputs"]
    assert not passes(nan_row, TOLERANCES[precision])


def test_overrides_make_max_abs_count_at_any_precision():
    fp16 = TOLERANCES["fp16"]
    assert with_overrides(fp16) == fp16 and not fp16.check_atol
    by_atol = with_overrides(fp16, atol=1e-3)
    assert (by_atol.atol, by_atol.rtol, by_atol.check_atol) == (1e-3, fp16.rtol, True)
    by_rtol = with_overrides(fp16, rtol=0.01)
    assert (by_rtol.atol, by_rtol.rtol, by_rtol.check_atol) == (fp16.atol, 0.01, True)
    assert by_atol.min_top1_agree == fp16.min_top1_agree and by_atol.min_cosine == fp16.min_cosine
    assert verdict_failures(overall(), by_atol, polygraphy_passed=False) == ["max abs error 1.00e-05 > atol 1e-03"]
    assert "and max rel error > rtol 1e-02" in verdict_failures(overall(), by_rtol, False)[0]


def test_engine_tolerances():
    assert engine_tolerance("fp32") is ENGINE_FP32 and ENGINE_FP32.atol == 1e-3 and ENGINE_FP32.check_atol
    assert ENGINE_FP32.atol > TOLERANCES["fp32"].atol  # TensorRT picks other convolution algorithms
    for precision in ("fp16", "int8"):
        assert engine_tolerance(precision) is TOLERANCES[precision]


def test_abs_ok_is_polygraphys_rule():
    tol = Tolerance(atol=1e-4, rtol=0.0)
    assert abs_ok(overall(max_abs_err=1e-4), tol)  # inclusive
    assert not abs_ok(overall(max_abs_err=2e-4, max_rel_err=0.0), tol)  # rtol 0: relative error never passes
    either = Tolerance(atol=1e-4, rtol=1e-2)
    assert abs_ok(overall(max_abs_err=2e-4, max_rel_err=1e-2), either)
    assert not abs_ok(overall(max_abs_err=2e-4, max_rel_err=2e-2), either)


# ---- the report: per group, merged, the verdict -----------------------------------------------------------------

def test_report_merges_groups_cuts_padding_and_judges():
    """Two groups, one split in two batches; the second from a static-batch model padded to 4 (its 4th row is
    padding, garbage that must not count)."""
    pad_ref, pad_cand = np.zeros((1, 6), np.float32), np.full((1, 6), 99.0, np.float32)
    groups = [InputGroup("a", [np.zeros(1), np.zeros(1)]), InputGroup("b", [np.zeros(4)], size=1,
                                                                       labels=np.array([0]))]
    cand = [CANDIDATE[:1], CANDIDATE[1:2], np.concatenate([CANDIDATE[2:], pad_cand, pad_cand, pad_cand])]
    ref = [REFERENCE[:1], REFERENCE[1:2], np.concatenate([REFERENCE[2:], pad_ref, pad_ref, pad_ref])]
    r = report("m.onnx", cand, ref, groups, TOLERANCES["int8"], True, "pytorch", "ONNX Runtime CPU")
    assert [g["group"] for g in r.groups] == ["a", "b"] and [g["n"] for g in r.groups] == [2, 1]
    assert r.overall["n"] == 3 and r.overall["max_abs_err"] == pytest.approx(10.0)  # padding (99) not counted
    assert r.overall["top1_agree"] == pytest.approx(1 / 3)
    assert r.accuracy == {"n": 1, "reference": 1.0, "candidate": 0.0, "drop_points": 100.0}
    assert not r.passed and r.failures == ["top-1 agreement 33.33% < 97.00%", "accuracy drop 100.00 points > 1.0"]
    assert r.precision == "int8" and r.tolerance["min_top1_agree"] == 0.97


def test_report_says_when_accuracy_could_not_be_checked():
    groups = [InputGroup("a", [np.zeros(3)])]
    r = report("m.onnx", [REFERENCE], [REFERENCE], groups, TOLERANCES["int8"], True, "pytorch", "x")
    assert r.passed and r.accuracy is None and r.failures == []
    assert r.notes == ["accuracy drop not checked: the images have no class labels (use class subfolders)"]
    fp16 = report("m.onnx", [REFERENCE], [REFERENCE], groups, TOLERANCES["fp16"], True, "pytorch", "x")
    assert fp16.notes == []


def test_report_with_a_nan_reference():
    ref = REFERENCE.copy()
    ref[1] = np.nan
    r = report("m.onnx", [CANDIDATE], [ref], [InputGroup("a", [np.zeros(3)])], TOLERANCES["fp32"], False,
               "pytorch", "x")
    assert not r.passed and len(r.failures) == 1 and "reference itself gives NaN/inf" in r.failures[0]


# ---- compare(): Polygraphy's verdict on real runs ---------------------------------------------------------------

class Shifted:
    """A candidate backend: PyTorch's logits plus a constant."""
    name = "shifted"

    def __init__(self, model, shift):
        from vanexport.runtime.torch_backend import TorchBackend

        self.run, self.shift = TorchBackend(model), shift

    def __call__(self, x):
        return self.run(x) + np.float32(self.shift)


@pytest.mark.parametrize("shift, passed", [(5e-5, True), (3e-4, False)])
def test_compare_passes_atol_to_polygraphy(b0, shift, passed):
    from vanexport.check.compare import compare

    model, _ = b0
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    r = compare(Shifted(model, shift), model, [InputGroup("random", [x])], TOLERANCES["fp32"], "m")
    assert r.polygraphy_passed is passed and r.passed is passed
    assert r.overall["max_abs_err"] == pytest.approx(shift, rel=0.05)
    assert r.overall["top1_agree"] == 1.0 and r.overall["min_cosine"] > 0.99999


def test_validate_enforces_an_explicit_atol(b0_onnx_64):
    """ONNX Runtime and PyTorch differ by a little above zero: --atol 1e-12 fails, the default passes."""
    from vanexport.check.validate import validate
    from vanexport.errors import ValidationFailed

    assert validate(b0_onnx_64).passed
    with pytest.raises(ValidationFailed, match=r"fails fp32 validation: max abs error .* > atol 1e-12"):
        validate(b0_onnx_64, atol=1e-12, raise_on_failure=True)
