"""Triton model repositories, each config.pbtxt parsed with Triton's own model-config protobuf schema."""
import shutil

import pytest

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
    assert ort.HasField("dynamic_batching") and ort.dynamic_batching.max_queue_delay_microseconds == 100

    trt = parse_model_config((repo / "van_b0_trt_fp16" / "config.pbtxt").read_text())
    assert trt.platform == "tensorrt_plan"
    assert trt.max_batch_size == 16 and list(trt.dynamic_batching.preferred_batch_size) == [8]  # from the profile
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
                  1, 100, [])
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
