"""DeepStream nvinfer config: scale and offsets from the variant's mean/std, label file, softmax ONNX."""
import configparser

import numpy as np
import pytest

from vanexport.errors import VanexportError
from vanexport.model.variants import VARIANTS
from vanexport.ship.deepstream import deepstream_config, scale_and_offsets


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_scale_and_offsets_for_every_variant(name):
    pre = VARIANTS[name].preprocessing
    scale, offsets = scale_and_offsets(pre.mean, pre.std)
    assert scale == pytest.approx(1 / (255 * 0.5), rel=1e-15) and offsets == [127.5, 127.5, 127.5]
    # nvinfer's y = net-scale-factor * (x - offset) equals the model's (x/255 - mean)/std for every 8-bit value
    x = np.arange(256, dtype=np.float64)
    for c in range(3):
        np.testing.assert_allclose(scale * (x - offsets[c]), (x / 255 - pre.mean[c]) / pre.std[c], atol=1e-12)


def test_other_statistics():
    scale, offsets = scale_and_offsets((0.4, 0.5, 0.6), (0.25, 0.25, 0.25))
    assert scale == pytest.approx(1 / 63.75) and offsets == pytest.approx([102.0, 127.5, 153.0])
    with pytest.raises(VanexportError, match="differs between channels"):
        scale_and_offsets((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_config_labels_and_softmax_onnx(tmp_path, b0_bundle):
    from vanexport.device.classify import softmax
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from vanexport.device.bundle import open_bundle

    out = tmp_path / "ds" / "config_infer.txt"
    out.parent.mkdir()
    r = deepstream_config(b0_bundle[0], out, batch_size=4, threshold=0.3)
    ini = configparser.ConfigParser()
    ini.read_string(out.read_text())
    p = ini["property"]
    assert float(p["net-scale-factor"]) == 1 / 127.5
    assert [float(v) for v in p["offsets"].split(";")] == [127.5, 127.5, 127.5]
    assert p["infer-dims"] == "3;64;64" and p["batch-size"] == "4" and p["network-mode"] == "0"
    assert p["network-type"] == "1" and p["model-color-format"] == "0" and p["classifier-threshold"] == "0.3"
    assert p["output-blob-names"] == "probabilities"
    assert p["model-engine-file"] == "van_b0_64_fp32_softmax.onnx_b4_gpu0_fp32.engine"
    labels = (out.parent / p["labelfile-path"]).read_text().strip().split(";")
    assert len(labels) == 1000 and labels[1] == "goldfish, Carassius auratus"

    softmaxed = OnnxRuntimeBackend(out.parent / p["onnx-file"])
    assert softmaxed.session.get_outputs()[0].name == "probabilities"
    b = open_bundle(b0_bundle[0])
    x = b.check_inputs()
    np.testing.assert_allclose(softmaxed(x), softmax(b.expected_logits("fp32")), atol=1e-6)
    assert r.precision == "fp32" and r.properties["process-mode"] == 1


def test_user_errors(tmp_path, b0_bundle):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VanexportError, match="no FP16 ONNX file"):
        deepstream_config(b0_bundle[0], out / "c.txt", precision="fp16")
    with pytest.raises(VanexportError, match="not a probability"):
        deepstream_config(b0_bundle[0], out / "c.txt", threshold=2)
    with pytest.raises(VanexportError, match="does not exist"):
        deepstream_config(b0_bundle[0], out / "no" / "c.txt")
    assert list(out.iterdir()) == []
