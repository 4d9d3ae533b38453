"""DeepStream nvinfer config: scale and offsets from the variant's mean/std, label file, softmax ONNX."""
import configparser
from types import SimpleNamespace

import numpy as np
import pytest
from image_folders import class_subset

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
    p = _ini(out)
    assert float(p["net-scale-factor"]) == 1 / 127.5
    assert [float(v) for v in p["offsets"].split(";")] == [127.5, 127.5, 127.5]
    assert p["infer-dims"] == "3;64;64" and p["batch-size"] == "4" and p["network-mode"] == "0"
    assert p["network-type"] == "1" and p["model-color-format"] == "0" and p["classifier-threshold"] == "0.3"
    assert p["output-blob-names"] == "probabilities"
    assert p["scaling-filter"] == "2" and p["scaling-compute-hw"] == "1"  # GPU cubic, as VAN's bicubic
    # the name nvinfer saves its engine under: <onnx-file>_b<batch-size>_gpu<gpu-id>_<mode>.engine
    assert p["model-engine-file"] == "van_b0_64_fp32_softmax.onnx_b4_gpu0_fp32.engine"
    labels = (out.parent / p["labelfile-path"]).read_text().strip().split(";")
    assert len(labels) == 1000 and labels[1] == "goldfish, Carassius auratus"

    softmaxed = OnnxRuntimeBackend(out.parent / p["onnx-file"])
    assert softmaxed.session.get_outputs()[0].name == "probabilities"
    assert softmaxed.metadata["output_name"] == "probabilities"  # the metadata says what the file is
    b = open_bundle(b0_bundle[0])
    x = b.check_inputs()
    np.testing.assert_allclose(softmaxed(x), softmax(b.expected_logits("fp32")), atol=1e-6)
    assert r.precision == "fp32" and r.properties["process-mode"] == 1
    assert sorted(f.name for f in out.parent.iterdir()) == sorted(
        ["config_infer.txt", "config_infer_labels.txt", "config_infer_preprocess.txt", "config_infer_roi_labels.py",
         "van_b0_64_fp32_softmax.onnx"])


def _ini(path, section="property"):
    ini = configparser.ConfigParser(inline_comment_prefixes=("#",))
    ini.read_string(path.read_text())
    return ini[section]


def test_full_frames_are_centre_cropped_by_nvdspreprocess(tmp_path, b0_bundle):
    out = tmp_path / "config_infer.txt"
    r = deepstream_config(b0_bundle[0], out, batch_size=2, frame="1280x720")
    p = _ini(out)
    assert p["input-tensor-from-meta"] == "1" and p["process-mode"] == "1" and p["gie-unique-id"] == "1"
    pre = _ini(tmp_path / "config_infer_preprocess.txt")
    assert pre["target-unique-ids"] == "1" and pre["tensor-name"] == "input"
    assert pre["network-input-shape"] == "2;3;64;64" and pre["processing-width"] == "64"
    assert pre["scaling-filter"] == "2" and pre["scaling-pool-compute-hw"] == "1"
    user = _ini(tmp_path / "config_infer_preprocess.txt", "user-configs")
    assert float(user["pixel-normalization-factor"]) == float(p["net-scale-factor"])
    group = _ini(tmp_path / "config_infer_preprocess.txt", "group-0")
    left, top, w, h = (int(v) for v in group["roi-params-src-0"].split(";"))
    assert r.roi == [left, top, w, h] and r.preprocessing == "centre-crop"
    # resize-short-side-71 + centre-crop-64 of a 1280x720 frame: resized 126x71 (int(71 * 1280 / 720)), crop at
    # (31, 4) there, i.e. (314.9, 40.6) in the frame, 64 * 1280/126 = 650.2 by 64 * 720/71 = 649.0: even values
    assert (left, top, w, h) == (314, 40, 650, 650)


def test_centre_roi_is_the_crop_the_evaluation_keeps():
    from vanexport.model.variants import Preprocessing
    from vanexport.ship.deepstream import centre_roi

    van = Preprocessing(input_size=224)
    # 1920x1080 resized to 440x248, crop at (108, 12): (471.3, 52.3) in the frame, 977.5 x 975.5 -> even
    assert centre_roi(1920, 1080, van) == (472, 52, 978, 976)
    assert centre_roi(1080, 1920, van) == (52, 472, 976, 978)
    for w, h in ((640, 480), (1280, 720), (4096, 2160), (301, 299)):
        left, top, rw, rh = centre_roi(w, h, van)
        assert all(v % 2 == 0 for v in (left, top, rw, rh))  # what nvdspreprocess keeps unchanged
        assert abs(min(rw, rh) - min(w, h) * 224 / 248) <= 2
        assert abs(left - (w - rw) / 2) <= 2 and abs(top - (h - rh) / 2) <= 2


def test_the_emulated_crop_equals_the_validated_one_where_they_coincide():
    """At the resize size itself the validated resize is a no-op, so its crop and the ROI crop are the same
    pixels; the stretch is not."""
    from vanexport.data.preprocess import resize_and_crop
    from vanexport.model.variants import Preprocessing
    from vanexport.ship.deepstream import emulate

    pre = Preprocessing(input_size=224)
    img = np.random.default_rng(0).integers(0, 256, (pre.resize_size, pre.resize_size, 3), dtype=np.uint8)
    np.testing.assert_array_equal(emulate(img, pre, "centre-crop"), resize_and_crop(img, pre))
    assert np.abs(emulate(img, pre, "stretch").astype(int) - resize_and_crop(img, pre)).mean() > 5
    wide = np.random.default_rng(1).integers(0, 256, (270, 480, 3), dtype=np.uint8)
    assert emulate(wide, pre, "centre-crop").shape == emulate(wide, pre, "stretch").shape == (224, 224, 3)


def test_agreement_is_measured_on_images(tmp_path, b0_bundle):
    """Random weights: the figures mean nothing about VAN, but they must be what the two pipelines give."""
    from PIL import Image

    from vanexport.device.bundle import open_bundle
    from vanexport.ship.deepstream import measure_agreement

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    pre = open_bundle(b0_bundle[0]).preprocessing
    for i in range(6):  # at the resize size: the crop is exact, so it agrees on every image
        Image.fromarray(rng.integers(0, 256, (pre.resize_size, pre.resize_size, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    b = open_bundle(b0_bundle[0])
    a = measure_agreement(b.onnx("fp32"), folder, pre)
    assert a["images"] == 6 and a["centre-crop"] == 1.0 and 0.0 <= a["stretch"] <= 1.0
    r = deepstream_config(b0_bundle[0], tmp_path / "c.txt", images=folder)
    assert r.agreement["centre-crop"] == 1.0 and r.agreement["config"] == "centre-crop"


@pytest.mark.slow
def test_agreement_on_the_held_out_digits(digits, tmp_path):
    """What docs/commands/deepstream.md reports (benchmarks/deepstream_crop.py measures it on all 400): the crop
    against the stretch on the 400 held-out digits as 72-pixel frames, and on 100 of them upscaled to 720 pixels (a
    real frame size, where the even rounding of the ROI is a tenth of a pixel of the network input, not one and a
    half; a 720-pixel PNG takes as long to write and read as the rest of this test)."""
    from PIL import Image

    from vanexport.formats.onnx_metadata import read_metadata
    from vanexport.ship.deepstream import measure_agreement

    pre = read_metadata(digits.onnx).preprocess
    native = measure_agreement(digits.onnx, digits.heldout_dir, pre)
    big = class_subset(digits.heldout_dir, tmp_path / "720", 10)
    for f in big.rglob("*.png"):
        Image.open(f).convert("RGB").resize((720, 720), Image.Resampling.BICUBIC).save(f)
    upscaled = measure_agreement(digits.onnx, big, pre)
    for name, a in (("72 px", native), ("720 px", upscaled)):
        print(f"held-out digits, {name}: centre crop {a['centre-crop']:.2%}, stretch {a['stretch']:.2%} of {a['images']}")
    assert native["images"] == 400 and upscaled["images"] == 100
    assert native["centre-crop"] > native["stretch"] and upscaled["centre-crop"] > upscaled["stretch"]
    assert upscaled["centre-crop"] >= 0.995  # at least the FP16 bar: the crop is the validated pipeline's


def test_secondary_classifier_has_its_own_id(tmp_path, b0_bundle):
    out = tmp_path / "sgie.txt"
    r = deepstream_config(b0_bundle[0], out, secondary=True)
    p = _ini(out)
    assert p["process-mode"] == "2" and p["gie-unique-id"] == "2" and p["operate-on-gie-id"] == "1"
    assert p["classifier-async-mode"] == "0"  # async skips objects without a tracker id
    assert "input-tensor-from-meta" not in p and r.preprocessing == "stretch" and r.preprocess_config is None
    assert not (tmp_path / "sgie_preprocess.txt").exists()
    deepstream_config(b0_bundle[0], tmp_path / "s2.txt", secondary=True, gie_id=7, operate_on_gie_id=3)
    p = _ini(tmp_path / "s2.txt")
    assert (p["gie-unique-id"], p["operate-on-gie-id"]) == ("7", "3")
    with pytest.raises(VanexportError, match="is the id of the primary detector"):
        deepstream_config(b0_bundle[0], tmp_path / "s3.txt", secondary=True, gie_id=1)
    with pytest.raises(VanexportError, match="centre crop is for full frames"):
        deepstream_config(b0_bundle[0], tmp_path / "s4.txt", secondary=True, crop=True)


def test_no_crop_stretches_the_frame(tmp_path, b0_bundle):
    r = deepstream_config(b0_bundle[0], tmp_path / "c.txt", crop=False)
    assert r.preprocessing == "stretch" and "input-tensor-from-meta" not in _ini(tmp_path / "c.txt")


def test_user_errors(tmp_path, b0_bundle):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VanexportError, match="no FP16 ONNX file"):
        deepstream_config(b0_bundle[0], out / "c.txt", precision="fp16")
    with pytest.raises(VanexportError, match="not a probability"):
        deepstream_config(b0_bundle[0], out / "c.txt", threshold=2)
    with pytest.raises(VanexportError, match="does not exist"):
        deepstream_config(b0_bundle[0], out / "no" / "c.txt")
    with pytest.raises(VanexportError, match="is not WIDTHxHEIGHT"):
        deepstream_config(b0_bundle[0], out / "c.txt", frame="1920*1080")
    assert list(out.iterdir()) == []


def test_int8_needs_the_engine_built_here(tmp_path, b0_bundle):
    out = tmp_path / "ds"
    out.mkdir()
    with pytest.raises(VanexportError, match="falls back to FP16 and saves a '_fp16.engine'") as e:
        deepstream_config(b0_bundle[0], out / "c.txt", precision="int8")
    assert "--build-engine" in e.value.hint and list(out.iterdir()) == []


def test_a_plan_built_here_that_does_not_match_leaves_nothing(tmp_path, b0_bundle, fake_gpu):
    """With the TensorRT stand-in the "engine" computes something else than the model: refused, nothing written."""
    out = tmp_path / "ds"
    out.mkdir()
    with pytest.raises(VanexportError, match="does not match the bundle .*nothing was written"):
        deepstream_config(b0_bundle[0], out / "c.txt", build_engine=True)
    assert list(out.iterdir()) == []
    assert ("Builder", 0) in fake_gpu.trt.events  # it did build, on device 0



def correct_engine(max_batch: int):
    """A stand-in for TensorRTBackend that is a correct engine: ONNX Runtime on the ONNX its plan was built from,
    taking batches of 1 to `max_batch`."""
    from vanexport.formats.engine_manifest import Profile, read_manifest
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    class Engine:
        def __init__(self, plan, device=0):
            self.ort = OnnxRuntimeBackend(read_manifest(plan).source_onnx.path)
            self.profile = Profile([1, 3, 64, 64], [max_batch, 3, 64, 64], [max_batch, 3, 64, 64])

        def __call__(self, x):
            assert 1 <= len(x) <= max_batch
            return self.ort(x)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    return Engine

def test_a_plan_built_here_is_what_nvinfer_loads(tmp_path, b0_bundle, fake_gpu, monkeypatch):
    """The engine is replaced by ONNX Runtime on the ONNX it was built from (a correct engine)."""
    from vanexport.formats.engine_manifest import read_manifest
    from vanexport.runtime import tensorrt_backend

    Engine = correct_engine(max_batch=2)
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", Engine)
    out = tmp_path / "ds"
    out.mkdir()
    r = deepstream_config(b0_bundle[0], out / "c.txt", batch_size=2, build_engine=True)
    p = _ini(out / "c.txt")
    assert p["model-engine-file"] == "van_b0_64_fp32_softmax_b2_gpu0.plan" == r.engine["plan"]
    assert (out / p["model-engine-file"]).read_bytes().startswith(b"FAKEPLAN")
    m = read_manifest(out / p["model-engine-file"])
    assert m.source_onnx.path == str(out / "van_b0_64_fp32_softmax.onnx")  # where the ONNX now is
    assert m.inputs[0].profile.max[0] == 2 and m.inputs[0].profile.min[0] == 1  # batch 1..batch-size
    assert r.engine["overall"]["top1_agree"] == 1.0
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no work folder left


# issue 19: what reaches the screen, the threshold, the input type, the target's TensorRT


def test_the_roi_box_is_not_drawn_and_the_tensor_type_is_the_files(tmp_path, b0_bundle):
    deepstream_config(b0_bundle[0], tmp_path / "c.txt")
    assert _ini(tmp_path / "c_preprocess.txt", "group-0")["draw-roi"] == "0"  # nvdspreprocess's default is 1
    assert _ini(tmp_path / "c_preprocess.txt")["tensor-data-type"] == "0"  # NvDsDataType_FP32: the file is FP32


def test_the_default_threshold_keeps_every_top1(tmp_path, b0_bundle):
    """nvinfer keeps a class when its probability is above classifier-threshold, strictly (its softmax parser);
    the reference applies that rule to the probabilities of the ONNX file the config names."""
    from vanexport.device.bundle import open_bundle
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    deepstream_config(b0_bundle[0], tmp_path / "c.txt")
    p = _ini(tmp_path / "c.txt")
    probs = OnnxRuntimeBackend(tmp_path / p["onnx-file"])(open_bundle(b0_bundle[0]).check_inputs())
    top1 = probs.max(axis=1)
    assert (top1 > float(p["classifier-threshold"])).all()
    assert (top1 <= 0.5).any()  # the old default, 0.5, would have dropped some: this model's top-1s are not all sure


def _fake_pyds():
    """Stand-ins for pyds and gi.repository.Gst, with the names of pyds's bindings (deepstream_python_apps:
    bindnvdsmeta.cpp, bindfunctions.cpp, bindnvds_roi_meta.cpp, bindnvdspreprocess_meta.cpp)."""
    import types

    class Obj(types.SimpleNamespace):
        def set(self, *rgba):
            self.rgba = rgba

    def glist(items):
        head = None
        for item in reversed(items):
            head = types.SimpleNamespace(data=item, next=head)
        return head

    def new_object(batch):
        color = lambda: Obj()  # noqa: E731
        return Obj(rect_params=Obj(), classifier=[], text_params=Obj(
            text_bg_clr=color(), font_params=Obj(font_color=color())))

    same = staticmethod(lambda x: x)
    pyds = types.ModuleType("pyds")
    pyds.NvDsUserMeta = pyds.NvDsClassifierMeta = pyds.NvDsLabelInfo = pyds.GstNvDsPreProcessBatchMeta = \
        type("Cast", (), {"cast": same})
    pyds.NvDsMetaType = types.SimpleNamespace(NVDS_PREPROCESS_BATCH_META=27)
    pyds.nvds_acquire_obj_meta_from_pool = new_object
    pyds.nvds_acquire_classifier_meta_from_pool = lambda batch: Obj(labels=[])
    pyds.nvds_acquire_label_info_meta_from_pool = lambda batch: Obj()
    pyds.nvds_add_label_info_meta_to_classifier = lambda c, info: c.labels.append(info)
    pyds.nvds_add_classifier_meta_to_object = lambda o, c: o.classifier.append(c)
    pyds.nvds_add_obj_meta_to_frame = lambda frame, o, parent: frame.objects.append(o)
    gst = types.SimpleNamespace(PadProbeReturn=types.SimpleNamespace(OK="ok"))
    gi = types.ModuleType("gi")
    repository = types.ModuleType("gi.repository")
    repository.Gst = gst
    gi.repository = repository
    return pyds, {"pyds": pyds, "gi": gi, "gi.repository": repository}, glist, Obj


def test_the_probe_moves_each_roi_label_into_an_object_meta(tmp_path, b0_bundle, monkeypatch):
    """With the crop, nvinfer leaves the label in the ROI meta (attach_metadata_classifier); the written probe adds
    an object meta with it, which OSD and msgconv read. Run on stand-in metadata."""
    import sys

    from modules import load_file

    r = deepstream_config(b0_bundle[0], tmp_path / "c.txt", gie_id=3)
    config = (tmp_path / "c.txt").read_text()
    assert "not in an\n# object meta" in config and "c_roi_labels.py" in config
    pyds, modules, glist, Obj = _fake_pyds()
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    probe = load_file(r.probe, "roi_labels_probe")
    labels = lambda *infos: glist([Obj(result_label=l, result_class_id=c, result_prob=p) for l, c, p in infos])  # noqa
    frame = Obj(objects=[])
    rois = [Obj(roi=Obj(left=472, top=52, width=978, height=976), frame_meta=frame, classifier_meta_list=glist([
                Obj(unique_component_id=7, label_info_list=labels(("other model", 1, 0.99))),
                Obj(unique_component_id=3, label_info_list=labels(("tabby, tabby cat", 281, 0.31)))])),
            Obj(roi=Obj(left=0, top=0, width=10, height=10), frame_meta=frame, classifier_meta_list=None)]
    preprocess = Obj(roi_vector=rois)
    batch = Obj(batch_user_meta_list=glist([
        Obj(base_meta=Obj(meta_type=5), user_meta_data=None),  # some other user meta
        Obj(base_meta=Obj(meta_type=27), user_meta_data=preprocess)]))
    assert probe.roi_labels_to_objects(batch) == 1
    [obj] = frame.objects
    assert (obj.obj_label, obj.class_id, obj.confidence, obj.unique_component_id) == ("tabby, tabby cat", 281, 0.31, 3)
    assert (obj.rect_params.left, obj.rect_params.top, obj.rect_params.width, obj.rect_params.height) == \
        (472, 52, 978, 976)
    assert obj.text_params.display_text.startswith("tabby, tabby cat")
    assert [(i.result_label, i.result_class_id) for c in obj.classifier for i in c.labels] == [("tabby, tabby cat", 281)]


def _tiny_onnx(path, in_type, out_type):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Cast", ["input"], ["logits"], to=getattr(TensorProto, out_type))],
                              "g", [helper.make_tensor_value_info("input", getattr(TensorProto, in_type), [1, 3])],
                              [helper.make_tensor_value_info("logits", getattr(TensorProto, out_type), [1, 3])])
    onnx.save(helper.make_model(graph), path)
    return path


@pytest.mark.parametrize("in_type, out_type, crop, expected", [
    ("FLOAT", "FLOAT", True, "float32"),
    ("FLOAT16", "FLOAT", True, "float16"),  # nvdspreprocess makes FP16 tensors
    ("FLOAT16", "FLOAT", False, "nvinfer's own scaling cannot give"),  # nvinfer's preprocessing writes float32
    ("FLOAT16", "FLOAT16", True, "nvinfer's classifier reads float32"),  # its parser reads the output as float
])
def test_input_types_from_the_file(tmp_path, in_type, out_type, crop, expected):
    from vanexport.ship import deepstream

    path = _tiny_onnx(tmp_path / "m.onnx", in_type, out_type)
    if expected.startswith("float"):
        assert deepstream._io_dtype(path, "input", "logits", crop) == expected
        pre = deepstream.preprocess_config(SimpleNamespace(input_size=64, resize_size=71), (0, 0, 64, 64), "input",
                                           1, 0, 1, 1.0, [0.0] * 3, expected)
        assert f"tensor-data-type={ {'float32': 0, 'float16': 7}[expected] }\n" in pre  # NvDsDataType (nvds_roi_meta.h)
    else:
        with pytest.raises(VanexportError, match=expected) as e:
            deepstream._io_dtype(path, "input", "logits", crop)
        assert "--fp16-io" in e.value.hint


def test_a_plan_for_another_tensorrt_than_the_targets_is_said(tmp_path, b0_bundle, fake_gpu, monkeypatch):
    """The stand-in TensorRT is 10.16.1.11; DeepStream 9.2 on x86 has 10.16.0.72 (its migration guide)."""
    from vanexport.runtime import tensorrt_backend

    Engine = correct_engine(max_batch=1)
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", Engine)
    r = deepstream_config(b0_bundle[0], tmp_path / "a.txt", build_engine=True)
    assert r.target == {"name": "DeepStream 9.2", "tensorrt": "10.16.0.72"}
    [w] = [w for w in r.warnings if "will not load there" in w]
    assert "TensorRT 10.16.1.11, but DeepStream 9.2 has TensorRT 10.16.0.72" in w and "--build-engine on the target" in w
    r = deepstream_config(b0_bundle[0], tmp_path / "b.txt", build_engine=True, target="9.1")  # "10.16.x"
    assert not [w for w in r.warnings if "will not load there" in w]
    r = deepstream_config(b0_bundle[0], tmp_path / "c.txt", build_engine=True, target="tensorrt:10.16.1.11")
    assert not [w for w in r.warnings if "will not load there" in w]
    with pytest.raises(VanexportError, match="--target '26.07' is neither a DeepStream release"):
        deepstream_config(b0_bundle[0], tmp_path / "d.txt", target="26.07")
    assert not (tmp_path / "d.txt").exists()


def test_the_probe_names_only_an_identifier_from_the_file_name(tmp_path, b0_bundle):
    out = tmp_path / 'x""" import os """.txt'  # a valid config value (no ';'), not a Python identifier
    r = deepstream_config(b0_bundle[0], out)
    text = open(r.probe).read()
    assert "import os" not in text and "    import roi_labels\n" in text
    compile(text, r.probe, "exec")  # still a valid script


def test_an_unreadable_image_costs_only_itself(tmp_path, b0_bundle):
    """`deepstream --images` on a folder with a broken file: the others are measured, the broken one is a warning."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = deepstream_config(b0_bundle[0], tmp_path / "c.txt", images=folder)
    assert r.agreement["images"] == 1 and len(r.agreement["skipped"]) == 1
    assert any("broken.png" in w and w.endswith("; skipped") for w in r.warnings)
    (folder / "good.png").unlink()
    with pytest.raises(VanexportError, match="no readable images"):
        deepstream_config(b0_bundle[0], tmp_path / "d.txt", images=folder)
