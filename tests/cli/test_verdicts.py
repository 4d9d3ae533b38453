"""A verdict names what it checked and what it did not: a PASS never covers a check that did not run."""
import numpy as np

from vanexport.check.compare import report
from vanexport.check.inputs import InputGroup
from vanexport.check.tolerances import TOLERANCES
from vanexport.cli.render import render_validation


def int8_report(labels):
    """A real report (check.compare.report) of an INT8 candidate that agrees with its reference on 8 images."""
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(8, 10)).astype(np.float32)
    candidate = reference + rng.normal(scale=1e-3, size=reference.shape).astype(np.float32)
    group = InputGroup("photos 64x64", [np.zeros((8, 3, 64, 64), np.float32)], labels=labels)
    return report("m_int8.onnx", [candidate], [reference], [group], TOLERANCES["int8"], True, "pytorch",
                  "ONNX Runtime CPU").to_dict()


def verdict_line(capsys, record) -> str:
    render_validation(record)
    return [line for line in capsys.readouterr().out.splitlines() if "PASS" in line or "FAIL" in line][-1]


def test_unlabelled_images_do_not_pass_the_accuracy_drop(capsys):
    record = int8_report(labels=None)
    assert record["passed"] and record["accuracy"] is None  # the JSON: no accuracy measured
    line = verdict_line(capsys, record)
    assert "top-1 agreement >= 97.0%" in line
    assert "accuracy drop: not checked (no labelled images" in line and "accuracy drop <=" not in line


def test_labelled_images_pass_the_accuracy_drop_they_checked(capsys):
    record = int8_report(labels=np.arange(8) % 10)
    assert record["passed"] and record["accuracy"]["n"] == 8
    line = verdict_line(capsys, record)
    assert "accuracy drop <= 1.0 point" in line and "not checked" not in line
