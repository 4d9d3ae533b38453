"""The OpenVINO backend on the ONNX files vanexport writes: FP32 equal to ONNX Runtime, BF16 only where the CPU has
it and then really BF16, the file's own metadata, and one-line errors."""
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'vanexport[openvino]')")

from vanexport.errors import VanexportError  # noqa: E402
from vanexport.runtime import openvino_backend as ovb  # noqa: E402
from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402


@pytest.fixture(scope="module")
def fp32(b0_onnx_64):
    return ovb.OpenVinoBackend(b0_onnx_64)


def batch(n, size=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, size, size)).astype(np.float32)


def test_fp32_equals_onnx_runtime_at_every_batch_of_a_dynamic_file(fp32, b0_onnx_64):
    ort = OnnxRuntimeBackend(b0_onnx_64)
    for n in (1, 3, 8):  # one compiled model, the batch axis dynamic
        x = batch(n, seed=n)
        out = fp32(x)
        assert out.shape == (n, 1000) and out.dtype == np.float32
        np.testing.assert_allclose(out, ort(x), atol=1e-4)
    assert fp32.precision == "fp32" and fp32.layer_precisions.keys() == {"f32"}
    assert fp32.precision_note.startswith("fp32 (OpenVINO ") and "compute layers in f32" in fp32.precision_note


def test_a_static_batch_file(tmp_path):
    from vanexport.export.onnx import export_onnx

    path = tmp_path / "van_b0_64_bs2.onnx"
    export_onnx("b0", None, img_size=64, batch=2, output=path, validate=False)
    x = batch(2)
    np.testing.assert_allclose(ovb.OpenVinoBackend(path)(x), OnnxRuntimeBackend(path)(x), atol=1e-4)


def test_metadata_is_the_files_own(fp32, b0_onnx_64):
    """What vanexport wrote into metadata_props, read through OpenVINO (no `onnx` package), as ONNX Runtime sees it."""
    assert fp32.metadata == OnnxRuntimeBackend(b0_onnx_64).metadata
    assert fp32.metadata["variant"] == "b0" and fp32.input_name == "input"


def test_a_file_that_contradicts_its_metadata_is_refused(fp32):
    from vanexport.formats.onnx_metadata import ModelMetadata

    meta = ModelMetadata.from_props(fp32.metadata)
    fp32.check_matches(meta, "van.onnx")  # the truth passes
    meta.num_classes = 10
    with pytest.raises(VanexportError, match="gives 1000 classes but its metadata says 10"):
        fp32.check_matches(meta, "van.onnx")
    meta.num_classes, meta.output_name = 1000, "probs"
    with pytest.raises(VanexportError, match="its graph gives \\['logits'\\]"):
        fp32.check_matches(meta, "van.onnx")


@pytest.mark.skipif("bf16" not in ovb.cpu_precisions(), reason="this CPU has no native BF16 (AVX512_BF16 or AMX)")
def test_bf16_runs_in_bf16_and_stays_close(fp32, b0_onnx_64):
    bf16 = ovb.OpenVinoBackend(b0_onnx_64, precision="bf16")
    assert bf16.precision == "bf16" and bf16.layer_precisions.most_common(1)[0][0] == "bf16"
    x = batch(4)
    ref, out = fp32(x), bf16(x)
    err = np.abs(out - ref).max()
    cosine = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert 1e-4 < err < 0.5 and cosine.min() > 0.999  # really lower precision, and still the same logits


def test_a_precision_the_cpu_lacks_is_refused(monkeypatch, b0_onnx_64):
    monkeypatch.setattr(ovb, "cpu_precisions", lambda core=None: ("fp32", "int8"))  # an AVX2-only machine
    with pytest.raises(VanexportError, match="this CPU has no native BF16 for OpenVINO \\(it computes in FP32, INT8\\)"):
        ovb.OpenVinoBackend(b0_onnx_64, precision="bf16")
    with pytest.raises(VanexportError, match="cannot run precision 'int4'"):
        ovb.OpenVinoBackend(b0_onnx_64, precision="int4")


def test_a_quiet_fallback_to_fp32_is_refused(monkeypatch, b0_onnx_64):
    """OpenVINO takes a precision hint, not an order: when the compiled graph is not what was asked, say so."""
    monkeypatch.setattr(ovb, "cpu_precisions", lambda core=None: ("fp32", "bf16"))
    monkeypatch.setattr(ovb, "runtime_precisions", lambda compiled: Counter({"f32": 200}))
    with pytest.raises(VanexportError, match="asked for BF16 but compiled the model in FP32"):
        ovb.OpenVinoBackend(b0_onnx_64, precision="bf16")


def test_what_ran_is_counted_over_compute_layers():
    assert ovb.ran_precision(Counter({"bf16": 200, "f32": 4})) == "bf16"
    assert ovb.ran_precision(Counter({"u8": 100, "f32": 20})) == "int8"
    assert ovb.ran_precision(Counter()) == "fp32"
    assert ovb.describe_precisions(Counter({"bf16": 200, "f32": 4})) == \
        "200 of 204 compute layers in bf16, 4 in f32"
    assert ovb.native_lower_precision(("fp32", "bf16", "int8")) == "bf16"
    assert ovb.native_lower_precision(("fp32", "fp16")) == "fp16"
    assert ovb.native_lower_precision(("fp32", "int8")) is None


def test_unreadable_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(VanexportError, match="OpenVINO cannot read") as e:
        ovb.OpenVinoBackend(bad)
    assert "\n" not in e.value.problem


def test_missing_openvino_is_one_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(VanexportError, match="OpenVINO is not installed") as e:
        ovb.import_openvino()
    assert "vanexport[openvino]" in e.value.hint
