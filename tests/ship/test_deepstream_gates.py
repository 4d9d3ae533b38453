"""The DeepStream config's gates and values against what DeepStream does with them.

- `--build-engine` refuses a plan whose top-1 disagrees with the bundle, and the test reaches that gate (not an
  earlier shape check): once with an engine that is right but for two nearly equal probabilities swapped, once
  with the TensorRT stand-in running a plan of the right width through the real backend.
- The values nvinfer and nvdspreprocess read, checked against the meaning DeepStream gives them, not against our
  own constants. Enum values as DeepStream 6.2 declares them (its sources, as shipped in the deepstream 6.2
  container under /opt/nvidia/deepstream/deepstream/sources):
    includes/nvdsinfer_context.h: NvDsInferFormat {RGB, BGR, GRAY, RGBA, BGRx, Tensor} (model-color-format),
        NvDsInferTensorOrder {kNCHW, kNHWC, kNC} (network-input-order);
    gst-plugins/gst-nvinfer/gstnvinfer_property_parser.cpp: maintain-aspect-ratio read with g_key_file_get_boolean;
    gst-plugins/gst-nvdspreprocess/include/nvdspreprocess_interface.h: NvDsPreProcessNetworkInputOrder
        {kNCHW = 0, kNHWC, CUSTOM}, NvDsPreProcessFormat {RGB, BGR, GRAY, ...} (network-color-format);
    includes/nvds_roi_meta.h: NvDsDataType {FP32, UINT8, INT8, UINT32, INT32, FP16} (tensor-data-type, checked by
        nvdspreprocess_property_parser.cpp);
    gst-plugins/gst-nvdspreprocess/nvdspreprocess_lib/nvdspreprocess_lib.cpp: [user-configs]
        pixel-normalization-factor (std::stof) and offsets (';'-separated, std::stof each);
    nvdspreprocess_lib/nvdspreprocess_conversion.cu: y = scaleFactor * (x - mean[c]) per pixel and channel.
  nvinfer's own normalisation is the same y = net-scale-factor * (x - offsets[c]) ("Gst-nvinfer", DeepStream
  developer guide, docs.nvidia.com/metropolis/deepstream/dev-guide/text/DS_plugin_gst-nvinfer.html). The expected
  factor and offsets are computed here from the bundle's mean and std by that formula, and checked pixel by pixel
  against VAN's (x / 255 - mean) / std.
"""
import configparser
import dataclasses
import hashlib
import io
import json
import tarfile

import numpy as np
import onnx
import pytest

from vanexport.errors import VanexportError
from vanexport.formats.onnx_metadata import read_metadata, write_metadata
from vanexport.ship.deepstream import deepstream_config

NVDSINFER_FORMAT = ["RGB", "BGR", "GRAY", "RGBA", "BGRx", "Tensor"]  # model-color-format
NVDSINFER_TENSOR_ORDER = ["NCHW", "NHWC", "NC"]  # nvinfer network-input-order
PREPROCESS_INPUT_ORDER = ["NCHW", "NHWC", "CUSTOM"]  # nvdspreprocess network-input-order
PREPROCESS_FORMAT = ["RGB", "BGR", "GRAY", "RGBA", "BGRx", "Tensor"]  # nvdspreprocess network-color-format
NVDS_DATA_TYPE = ["float32", "uint8", "int8", "uint32", "int32", "float16"]  # tensor-data-type (NvDsDataType)


def _ini(path, section="property"):
    ini = configparser.ConfigParser(inline_comment_prefixes=("#",))
    ini.read_string(path.read_text())
    return ini[section]


def _with_preprocessing(bundle, out, mean, std):
    """A copy of `bundle` whose manifest says the model was normalised with `mean` and `std` (re-listed hashes)."""
    with tarfile.open(bundle, "r:gz") as tar:
        data = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(data.pop("manifest.json"))
    manifest["preprocessing"].update(mean=list(mean), std=list(std))
    for entry in manifest["models"]:  # each ONNX file's own metadata says the same (opening a bundle checks it)
        model = onnx.load_model_from_string(data[entry["file"]])
        meta = read_metadata(model)
        write_metadata(model, dataclasses.replace(meta, preprocessing=dict(meta.preprocessing, mean=list(mean),
                                                                           std=list(std))))
        data[entry["file"]] = model.SerializeToString()
        entry["sha256"] = hashlib.sha256(data[entry["file"]]).hexdigest()
        manifest["files"][entry["file"]] = {"sha256": entry["sha256"], "size": len(data[entry["file"]])}
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for name, body in [("manifest.json", json.dumps(manifest).encode()), *sorted(data.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    assert all(manifest["files"][n]["sha256"] == hashlib.sha256(b).hexdigest() for n, b in data.items())
    return out


@pytest.mark.parametrize("mean, std", [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.4, 0.5, 0.6), (0.25, 0.25, 0.25))])
def test_what_nvinfer_and_nvdspreprocess_compute_is_vans_normalisation(tmp_path, b0_bundle, mean, std):
    bundle = _with_preprocessing(b0_bundle[0], tmp_path / "b.tar.gz", mean, std)
    out = tmp_path / "ds" / "config_infer.txt"
    out.parent.mkdir()
    deepstream_config(bundle, out, batch_size=2)
    infer = _ini(out)
    user = _ini(out.parent / "config_infer_preprocess.txt", "user-configs")

    factor = 1 / (255 * std[0])  # y = factor * (x - offset[c]) == (x / 255 - mean[c]) / std[c]
    offsets = [255 * m for m in mean]
    x = np.arange(256, dtype=np.float64)
    for scale_text, offsets_text in ((infer["net-scale-factor"], infer["offsets"]),
                                     (user["pixel-normalization-factor"], user["offsets"])):
        got_scale, got_offsets = float(scale_text), [float(v) for v in offsets_text.split(";")]
        assert got_scale == pytest.approx(factor, rel=1e-12) and got_offsets == pytest.approx(offsets, rel=1e-12)
        for c in range(3):  # what the kernel computes, for every 8-bit value
            np.testing.assert_allclose(got_scale * (x - got_offsets[c]), (x / 255 - mean[c]) / std[c], atol=1e-9)


def test_orders_colours_and_data_types_mean_what_the_model_takes(tmp_path, b0_bundle):
    from vanexport.device.bundle import open_bundle

    manifest = open_bundle(b0_bundle[0]).manifest
    io_input, layout, colour = manifest.io_input, manifest.preprocessing["layout"], manifest.preprocessing["color"]
    assert (layout, colour) == ("NCHW", "RGB")  # what the bundle says VAN takes (trained on PIL RGB images)
    assert io_input.shape[1] == 3 and io_input.shape[2] == io_input.shape[3] == 64  # and its input is channels first
    out = tmp_path / "config_infer.txt"
    r = deepstream_config(b0_bundle[0], out, batch_size=2)
    infer, pre = _ini(out), _ini(tmp_path / "config_infer_preprocess.txt")

    assert NVDSINFER_TENSOR_ORDER[int(infer["network-input-order"])] == layout
    assert PREPROCESS_INPUT_ORDER[int(pre["network-input-order"])] == layout
    assert pre["network-input-shape"] == f"2;{io_input.shape[1]};{io_input.shape[2]};{io_input.shape[3]}"  # N;C;H;W
    assert NVDSINFER_FORMAT[int(infer["model-color-format"])] == colour
    assert PREPROCESS_FORMAT[int(pre["network-color-format"])] == colour
    # the tensor nvdspreprocess hands nvinfer has the ONNX input's element type
    assert NVDS_DATA_TYPE[int(pre["tensor-data-type"])] == io_input.dtype == "float32"
    # maintain-aspect-ratio is a boolean: 1 pads to keep the aspect ratio. The ROI is the crop, square like the
    # network input, so there is nothing to pad: 0 scales it as the evaluation does (and nvinfer itself is not to
    # pad a stretched frame either)
    left, top, w, h = r.roi
    assert abs(w / h - 1) < 0.01
    assert pre["maintain-aspect-ratio"] in ("0", "false") and infer["maintain-aspect-ratio"] in ("0", "false")


# ---- --build-engine: the top-1 gate --------------------------------------------------------------------------

def _engine_swapping_the_top_two(image: int):
    """A TensorRT backend stand-in that is the softmax ONNX on ONNX Runtime (a correct engine), except that for
    check image `image` it swaps the two highest probabilities: top-1 wrong there, every value within 1e-3 if the
    two are that close (checked by the test)."""
    from vanexport.formats.engine_manifest import Profile, read_manifest
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    seen = {"n": 0}

    class Engine:
        def __init__(self, plan, device=0):
            self.ort = OnnxRuntimeBackend(read_manifest(plan).source_onnx.path)
            self.profile = Profile([1, 3, 64, 64], [1, 3, 64, 64], [1, 3, 64, 64])  # one image a call

        def __call__(self, x):
            y = self.ort(x)
            if seen["n"] == image:
                top = np.argsort(-y[0])[:2]
                y[0, top] = y[0, top[::-1]]
            seen["n"] += len(x)
            return y

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    return Engine


def test_build_engine_refuses_a_plan_whose_top1_disagrees_even_when_every_value_is_close(tmp_path, b0_bundle,
                                                                                        fake_gpu, monkeypatch):
    from vanexport.device.bundle import open_bundle
    from vanexport.device.classify import softmax
    from vanexport.runtime import tensorrt_backend

    b = open_bundle(b0_bundle[0])
    probs = np.sort(softmax(b.expected_logits("fp32")), axis=1)
    gaps = probs[:, -1] - probs[:, -2]
    image = int(np.argmin(gaps))
    assert gaps[image] < 1e-3  # so only the top-1 gate can catch the swap (random weights: nearly flat)
    n = len(gaps)
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", _engine_swapping_the_top_two(image))
    out = tmp_path / "ds"
    out.mkdir()
    with pytest.raises(VanexportError) as e:
        deepstream_config(b0_bundle[0], out / "c.txt", batch_size=1, build_engine=True)
    assert e.value.problem == (f"the plan built here does not match the bundle (top-1 agreement {(n - 1) / n:.2%}); "
                               "nothing was written")
    assert list(out.iterdir()) == []
    # the same engine without the swap passes: the refusal above is the gate's
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", _engine_swapping_the_top_two(image=-1))
    r = deepstream_config(b0_bundle[0], out / "c.txt", batch_size=1, build_engine=True)
    assert r.engine["overall"]["top1_agree"] == 1.0


def test_build_engine_with_the_tensorrt_stand_in_reaches_the_gate(tmp_path, b0_bundle, fake_gpu):
    """The stand-in's plan has the bundle's 1000 outputs (so no shape check stops it) and runs through the real
    TensorRT backend and its asynchronous stream: its outputs are not VAN's, and the gates say so."""
    fake_gpu.trt.plan_classes = 1000
    out = tmp_path / "ds"
    out.mkdir()
    with pytest.raises(VanexportError) as e:
        deepstream_config(b0_bundle[0], out / "c.txt", batch_size=2, build_engine=True)
    assert e.value.problem.startswith("the plan built here does not match the bundle (top-1 agreement ")
    assert "max abs error" in e.value.problem and list(out.iterdir()) == []
    assert not fake_gpu.driver.memory and not fake_gpu.driver.pending()  # the backend let everything go
