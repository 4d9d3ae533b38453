"""Triton model repositories, each config.pbtxt parsed with Triton's own model-config protobuf schema."""
import shutil

import pytest
from modules import load_file

pytest.importorskip("tritonclient", reason="tritonclient (Triton's model-config schema) is in the 'triton' extra")

from vanexport.errors import VanexportError  # noqa: E402
from vanexport.files import sha256_file  # noqa: E402
from vanexport.device.archive import read_bundle  # noqa: E402
from vanexport.device.bundle import open_bundle  # noqa: E402
from vanexport.ship.bundle import add_engine_to_bundle  # noqa: E402
from vanexport.ship.triton import model_config_pb2, parse_model_config, triton_repository  # noqa: E402


@pytest.fixture
def bundle_with_plans(tmp_path, b0_bundle, make_manifest):
    """The b0 bundle plus two FP16 plans for two GPU architectures (opaque bytes: never parsed here)."""
    from vanexport.machine import GpuInfo
    from vanexport.formats.engine_manifest import Profile, TensorSpec, manifest_path, write_manifest

    bundle = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], bundle)
    onnx_sha = read_bundle(bundle)["models"][0]["sha256"]
    for cc, gpu in (("8.7", "Orin"), ("9.0", "H100")):
        plan = tmp_path / f"van_b0_64_fp16_sm{cc.replace('.', '')}.plan"
        plan.write_bytes(f"plan for {gpu}".encode())
        m = make_manifest(plan, gpu=GpuInfo(gpu, cc), source_sha=onnx_sha)
        m.inputs = [TensorSpec("input", "float32", [-1, 3, 64, 64],
                               Profile([1, 3, 64, 64], [8, 3, 64, 64], [16, 3, 64, 64]))]
        write_manifest(m, manifest_path(plan))
        add_engine_to_bundle(bundle, plan)
    return bundle


def test_onnxruntime_and_tensorrt_models(tmp_path, bundle_with_plans):
    repo = tmp_path / "model_repository"
    result = triton_repository(bundle_with_plans, repo, instances=2)
    assert [m["name"] for m in result.models] == ["van_b0", "van_b0_trt_fp16"]
    pb2 = model_config_pb2()

    ort = parse_model_config((repo / "van_b0" / "config.pbtxt").read_text())
    assert ort.platform == "onnxruntime_onnx" and ort.max_batch_size == 32
    assert [(i.name, i.data_type, list(i.dims)) for i in ort.input] == [("input", pb2.TYPE_FP32, [3, 64, 64])]
    assert [(o.name, list(o.dims), o.label_filename) for o in ort.output] == [("logits", [1000], "labels.txt")]
    assert [(g.kind, g.count) for g in ort.instance_group] == [(pb2.ModelInstanceGroup.KIND_GPU, 2)]
    # Triton's documented starting point: `dynamic_batching { }`, no delay, no preferred sizes
    assert ort.HasField("dynamic_batching") and ort.dynamic_batching.max_queue_delay_microseconds == 0
    assert "dynamic_batching {\n}" in (repo / "van_b0" / "config.pbtxt").read_text()

    trt = parse_model_config((repo / "van_b0_trt_fp16" / "config.pbtxt").read_text())
    assert trt.platform == "tensorrt_plan"
    assert trt.max_batch_size == 16 and list(trt.dynamic_batching.preferred_batch_size) == []  # max from the profile
    assert dict(trt.cc_model_filenames) == {"8.7": "model_sm87.plan", "9.0": "model_sm90.plan"}
    assert trt.default_model_filename == "model_sm87.plan"
    assert list(trt.input[0].dims) == [3, 64, 64]

    b = open_bundle(bundle_with_plans)
    assert sha256_file(repo / "van_b0" / "1" / "model.onnx") == sha256_file(b.onnx("fp32"))
    assert (repo / "van_b0_trt_fp16" / "1" / "model_sm90.plan").read_bytes() == b"plan for H100"
    labels = (repo / "van_b0" / "labels.txt").read_text().splitlines()
    assert len(labels) == 1000 and labels[0] == "tench, Tinca tinca"


def test_cpu_instances_and_existing_models(tmp_path, b0_bundle):
    repo = tmp_path / "repo"
    triton_repository(b0_bundle[0], repo, cpu=True, max_batch=4, name="van")
    cfg = parse_model_config((repo / "van" / "config.pbtxt").read_text())
    assert cfg.instance_group[0].kind == model_config_pb2().ModelInstanceGroup.KIND_CPU and cfg.max_batch_size == 4
    with pytest.raises(VanexportError, match="already exists"):
        triton_repository(b0_bundle[0], repo, name="van")
    triton_repository(b0_bundle[0], repo, name="van", max_batch=8, force=True)
    assert parse_model_config((repo / "van" / "config.pbtxt").read_text()).max_batch_size == 8
    assert sorted(p.name for p in repo.iterdir()) == ["van"]  # no temp or old folders left


def test_static_batch_config():
    from google.protobuf import text_format

    from vanexport.ship.triton import _config

    pb2 = model_config_pb2()
    cfg = _config(pb2, "s", "onnxruntime_onnx", {"name": "input", "shape": [4, 3, 224, 224]}, 10, "logits", 0, "gpu",
                  1, 100)
    parsed = parse_model_config(text_format.MessageToString(cfg))
    assert parsed.max_batch_size == 0 and not parsed.HasField("dynamic_batching")
    assert list(parsed.input[0].dims) == [4, 3, 224, 224] and list(parsed.output[0].dims) == [4, 10]


@pytest.mark.parametrize("text, message", [
    ('name: "m" platform: "onnxruntime_onnx" max_batch_size: 8 bogus_field: 1', "does not fit Triton's model-config schema"),
    ('name: "m" platform: "onnxruntime_onnx" max_batch_size: 0 dynamic_batching {} '
     'input [{name: "input" data_type: TYPE_FP32 dims: [3]}] output [{name: "o" data_type: TYPE_FP32 dims: [1]}]',
     "dynamic batching needs max_batch_size > 0"),
    ('name: "m" platform: "onnxruntime_onnx" max_batch_size: 8 input [{name: "input" dims: [3]}] '
     'output [{name: "o" data_type: TYPE_FP32 dims: [1]}]', "has no name, type or valid dims"),
    ('name: "m" platform: "pytorch_libtorch" max_batch_size: 8', "unknown platform"),
])
def test_the_checker_rejects_bad_configs(text, message):
    with pytest.raises(VanexportError, match=message):
        parse_model_config(text)


def test_a_queue_delay_is_the_users_choice(tmp_path, b0_bundle):
    triton_repository(b0_bundle[0], tmp_path / "r", max_queue_delay_us=250)
    cfg = parse_model_config((tmp_path / "r" / "van_b0" / "config.pbtxt").read_text())
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 250
    with pytest.raises(VanexportError, match="is negative"):
        triton_repository(b0_bundle[0], tmp_path / "r2", max_queue_delay_us=-1)


def _pb_utils(model_config: dict):
    """triton_python_backend_utils as the Python backend provides it, for the calls model.py makes."""
    import types

    import numpy as np

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self.output_tensors, self.error = output_tensors, error

    class TritonError:
        def __init__(self, message):
            self.message = message

    def get_output_config_by_name(config, name):
        return next(o for o in config["output"] if o["name"] == name)

    return types.SimpleNamespace(
        Tensor=Tensor, InferenceResponse=InferenceResponse, TritonError=TritonError,
        get_output_config_by_name=get_output_config_by_name,
        get_input_tensor_by_name=lambda request, name: request[name],
        triton_string_to_numpy=lambda t: {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}[t])


def test_ensemble_takes_encoded_images(tmp_path, b0_bundle, monkeypatch):
    """The repository's ensemble, its Python preprocessing model run with a stand-in for Triton's Python backend
    utilities (bytes in, the tensor vanexport's own preprocessing makes out), and the client example."""
    import io
    import json
    import sys
    import types

    import numpy as np
    from google.protobuf import json_format
    from PIL import Image

    from vanexport.data.preprocess import preprocess_image

    repo = tmp_path / "repo"
    result = triton_repository(b0_bundle[0], repo, max_batch=8, ensemble=True)
    assert [m["name"] for m in result.models] == ["van_b0", "van_b0_preprocess", "van_b0_ensemble"]
    pre_cfg = parse_model_config((repo / "van_b0_preprocess" / "config.pbtxt").read_text())
    ens = parse_model_config((repo / "van_b0_ensemble" / "config.pbtxt").read_text())
    pb2 = model_config_pb2()
    assert pre_cfg.backend == "python" and pre_cfg.platform == "" and pre_cfg.input[0].data_type == pb2.TYPE_STRING
    assert ens.platform == "ensemble" and not ens.instance_group and ens.max_batch_size == 8
    assert [(s.model_name, dict(s.input_map), dict(s.output_map)) for s in ens.ensemble_scheduling.step] == [
        ("van_b0_preprocess", {"IMAGE": "IMAGE"}, {"PIXELS": "pixels"}),
        ("van_b0", {"input": "pixels"}, {"logits": "logits"})]
    assert (repo / "van_b0_ensemble" / "1").is_dir() and not list((repo / "van_b0_ensemble" / "1").iterdir())

    # the preprocessing model, run as Triton runs it
    rng = np.random.default_rng(3)
    pictures = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((50, 90), (120, 64), (64, 64))]
    blobs = []
    for p in pictures:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _pb_utils({}))
    model = load_file(repo / "van_b0_preprocess" / "1" / "model.py", "van_preprocess_model").TritonPythonModel()
    config = json_format.MessageToDict(pre_cfg, preserving_proto_field_name=True)
    model.initialize({"model_config": json.dumps(config)})
    pb = sys.modules["triton_python_backend_utils"]
    requests = [{"IMAGE": pb.Tensor("IMAGE", np.array([[b] for b in blobs[:2]], dtype=np.object_))},
                {"IMAGE": pb.Tensor("IMAGE", np.array([[blobs[2]]], dtype=np.object_))},
                {"IMAGE": pb.Tensor("IMAGE", np.array([[b"not an image"]], dtype=np.object_))}]
    responses = model.execute(requests)
    assert len(responses) == 3  # one per request, the bad one included
    pre = open_bundle(b0_bundle[0]).preprocessing
    got = np.concatenate([responses[0].output_tensors[0].as_numpy(), responses[1].output_tensors[0].as_numpy()])
    want = np.stack([preprocess_image(p, pre) for p in pictures])
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert responses[2].error is not None and not responses[2].output_tensors

    # the client example, against a stand-in for tritonclient.http
    sent = {}

    class Client:
        def __init__(self, url):
            sent["url"] = url

        def get_model_metadata(self, model_name):  # as the server answers it, from the model's config
            assert model_name == ens.name
            return {"name": model_name, "inputs": [{"name": t.name} for t in ens.input],
                    "outputs": [{"name": t.name} for t in ens.output]}

        def infer(self, model_name, inputs, outputs):
            sent.update(model=model_name, data=inputs[0].data, name=inputs[0].name, output=outputs[0].name)
            return types.SimpleNamespace(as_numpy=lambda n: np.array([[b"9.1:3:three", b"2.0:1:one"]] * len(
                inputs[0].data), dtype=np.object_))

    class InferInput:
        def __init__(self, name, shape, datatype):
            self.name, self.shape, self.datatype = name, shape, datatype

        def set_data_from_numpy(self, data, binary_data=True):
            assert data.dtype == np.object_ and list(data.shape) == self.shape and self.datatype == "BYTES"
            self.data = data

    http = types.SimpleNamespace(InferenceServerClient=Client, InferInput=InferInput,
                                 InferRequestedOutput=lambda name, binary_data=True, class_count=0:
                                 types.SimpleNamespace(name=name))
    monkeypatch.setitem(sys.modules, "tritonclient", types.ModuleType("tritonclient"))
    monkeypatch.setitem(sys.modules, "tritonclient.http", http)
    files = []
    for i, blob in enumerate(blobs[:2]):
        files.append(tmp_path / f"img{i}.png")
        files[-1].write_bytes(blob)
    client = load_file(repo / "van_b0_ensemble" / "client.py", "van_client")
    client.main([str(f) for f in files])
    assert sent["model"] == "van_b0_ensemble" and sent["name"] == "IMAGE" and sent["output"] == "logits"
    assert [row[0] for row in sent["data"]] == blobs[:2]  # the file bytes, unchanged


def test_the_ensemble_checks_catch_broken_wiring():
    from google.protobuf import text_format

    from vanexport.ship.triton import check_ensemble

    base = ('name: "e" platform: "ensemble" max_batch_size: 8 input [{name: "IMAGE" data_type: TYPE_STRING dims: [1]}] '
            'output [{name: "logits" data_type: TYPE_FP32 dims: [10]}] ')
    step1 = '{model_name: "pre" model_version: -1 input_map {key: "IMAGE" value: "IMAGE"} output_map {key: "PIXELS" value: "pixels"}}'
    step2 = '{model_name: "m" model_version: -1 input_map {key: "input" value: "%s"} output_map {key: "logits" value: "logits"}}'
    good = parse_model_config(base + f"ensemble_scheduling {{ step [{step1}, {step2 % 'pixels'}] }}")
    with pytest.raises(VanexportError, match="reads pixel before any step writes it"):
        parse_model_config(base + f"ensemble_scheduling {{ step [{step1}, {step2 % 'pixel'}] }}")
    with pytest.raises(VanexportError, match="an ensemble with no steps"):
        parse_model_config(base)
    with pytest.raises(VanexportError, match="no instance_group"):
        parse_model_config(base + 'instance_group [{kind: KIND_CPU}] ' + f"ensemble_scheduling {{ step [{step1}, {step2 % 'pixels'}] }}")
    pb2 = model_config_pb2()
    pre = text_format.Parse('name: "pre" backend: "python" max_batch_size: 8 input [{name: "IMAGE" data_type: TYPE_STRING '
                            'dims: [1]}] output [{name: "PIXELS" data_type: TYPE_FP32 dims: [3, 8, 8]}]', pb2.ModelConfig())
    m = text_format.Parse('name: "m" platform: "onnxruntime_onnx" max_batch_size: 4 input [{name: "input" data_type: '
                          'TYPE_FP32 dims: [3, 8, 8]}] output [{name: "logits" data_type: TYPE_FP32 dims: [10]}]',
                          pb2.ModelConfig())
    with pytest.raises(VanexportError, match="allows maximum batch size 8, but 'm' only 4"):
        check_ensemble(good, {"pre": pre, "m": m})
    m.max_batch_size = 8
    check_ensemble(good, {"pre": pre, "m": m})
    with pytest.raises(VanexportError, match="'pre' is not in the repository"):
        check_ensemble(good, {"m": m})
    m.input[0].name = "images"
    with pytest.raises(VanexportError, match="fit its models: 'm' has no input input: "):
        check_ensemble(good, {"pre": pre, "m": m})


# issue 19: data types from the files, the target's TensorRT, version-compatible plans


def _bundle_with_plan(tmp_path, b0_bundle, make_manifest, *, version="10.14.1.48", compatible=False, dtype="float32"):
    from vanexport.machine import GpuInfo
    from vanexport.formats.engine_manifest import Profile, TensorSpec, manifest_path, write_manifest

    bundle = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], bundle)
    plan = tmp_path / "van_b0_64_fp16_sm86.plan"
    plan.write_bytes(b"plan")
    m = make_manifest(plan, trt_version=version, version_compatible=compatible, gpu=GpuInfo("NVIDIA A10", "8.6"),
                      source_sha=read_bundle(bundle)["models"][0]["sha256"])
    m.inputs = [TensorSpec("input", dtype, [-1, 3, 64, 64], Profile([1, 3, 64, 64], [8, 3, 64, 64], [16, 3, 64, 64]))]
    m.outputs = [TensorSpec("logits", dtype, [-1, 1000])]
    write_manifest(m, manifest_path(plan))
    add_engine_to_bundle(bundle, plan)
    return bundle


def test_plan_data_types_come_from_its_manifest(tmp_path, b0_bundle, make_manifest):
    pb2 = model_config_pb2()
    bundle = _bundle_with_plan(tmp_path, b0_bundle, make_manifest, dtype="float16")  # an FP16-I/O source
    triton_repository(bundle, tmp_path / "repo")
    trt = parse_model_config((tmp_path / "repo" / "van_b0_trt_fp16" / "config.pbtxt").read_text())
    assert (trt.input[0].data_type, trt.output[0].data_type) == (pb2.TYPE_FP16, pb2.TYPE_FP16)
    ort = parse_model_config((tmp_path / "repo" / "van_b0" / "config.pbtxt").read_text())
    assert (ort.input[0].data_type, ort.output[0].data_type) == (pb2.TYPE_FP32, pb2.TYPE_FP32)  # the FP32 file


def test_onnx_data_types_come_from_the_file(tmp_path, b0_bundle, monkeypatch):
    """The ONNX Runtime model and the ensemble around it take what the file takes (here: an FP16-I/O file)."""
    from vanexport.formats import onnx_wire

    pb2 = model_config_pb2()
    seen = []
    monkeypatch.setattr(onnx_wire, "io_dtypes", lambda path: (seen.append(path), ({"input": "float16"},
                                                                                    {"logits": "float16"}))[1])
    triton_repository(b0_bundle[0], tmp_path / "repo", ensemble=True)
    assert seen == [open_bundle(b0_bundle[0]).onnx("fp32")]
    configs = {name: parse_model_config((tmp_path / "repo" / name / "config.pbtxt").read_text())
               for name in ("van_b0", "van_b0_preprocess", "van_b0_ensemble")}
    assert configs["van_b0"].input[0].data_type == pb2.TYPE_FP16 == configs["van_b0"].output[0].data_type
    assert configs["van_b0_preprocess"].output[0].data_type == pb2.TYPE_FP16  # what the ONNX model takes
    assert configs["van_b0_ensemble"].output[0].data_type == pb2.TYPE_FP16


def test_plans_are_checked_against_the_target_triton(tmp_path, b0_bundle, make_manifest):
    bundle = _bundle_with_plan(tmp_path, b0_bundle, make_manifest, version="11.4.0.106")
    r = triton_repository(bundle, tmp_path / "a")
    [w] = [w for w in r.warnings if "will not load there" in w]
    assert "TensorRT 11.4.0.106, but Triton 26.07 has TensorRT 10.14.1.48" in w and "vanexport trt --bundle" in w
    r = triton_repository(bundle, tmp_path / "b", target="tensorrt:11.4")
    assert not [w for w in r.warnings if "will not load there" in w]
    with pytest.raises(VanexportError, match="--target '9.2' is neither a Triton release"):
        triton_repository(bundle, tmp_path / "c", target="9.2")
    assert not (tmp_path / "c").exists()


def test_version_compatible_plans_say_how_triton_loads_them(tmp_path, b0_bundle, make_manifest):
    bundle = _bundle_with_plan(tmp_path, b0_bundle, make_manifest, version="10.13.3.9", compatible=True)
    r = triton_repository(bundle, tmp_path / "repo")
    text = (tmp_path / "repo" / "van_b0_trt_fp16" / "config.pbtxt").read_text()
    assert "--backend-config=tensorrt,version-compatible=true" in text  # a comment, above the config itself
    assert parse_model_config(text).platform == "tensorrt_plan"
    assert any("--backend-config=tensorrt,version-compatible=true" in w for w in r.warnings)
    assert not [w for w in r.warnings if "will not load there" in w]  # 10.13 plans run on 26.07's 10.14
    assert "version-compatible" not in (tmp_path / "repo" / "van_b0" / "config.pbtxt").read_text()
