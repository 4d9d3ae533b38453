"""The pure parts around TensorRT calls: profile checks at run time, parser errors node by node, the engine
inspector's layer table, and the inputs a plan is validated on."""
import json
import threading
import weakref
from types import SimpleNamespace

import numpy as np
import pytest

from vanexport.errors import VanexportError
from vanexport.runtime.tensorrt_backend import check_in_profile
from vanexport.runtime.tensorrt_engine import layer_rows, member_name
from vanexport.trt.builder import describe_parser_error
from vanexport.check.inputs import InputGroup, groups_within_profile
from vanexport.formats.engine_manifest import Profile

PROFILE = Profile([1, 3, 224, 224], [8, 3, 224, 224], [32, 3, 224, 224])


def test_shapes_inside_the_profile_pass():
    for shape in [(1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224)]:
        check_in_profile(shape, PROFILE)


@pytest.mark.parametrize("shape, hint", [
    ((33, 3, 224, 224), "send at most 32 images per call, or rebuild the engine with --max-batch 33"),
    ((2, 3, 256, 256), "resize the images to 224x224"),
    ((3, 224, 224), "pass a 4-D NCHW batch"),
])
def test_a_request_outside_the_profile_names_the_profile(shape, hint):
    with pytest.raises(VanexportError) as e:
        check_in_profile(shape, PROFILE, "input")
    assert e.value.problem == (f"input 'input' of shape {'x'.join(map(str, shape))} is outside the engine's "
                               "optimization profile (min 1x3x224x224, opt 8x3x224x224, max 32x3x224x224)")
    assert e.value.hint.startswith(hint)
    with pytest.raises(VanexportError, match="send at least 4 images per call"):
        check_in_profile((2, 3, 224, 224), Profile([4, 3, 224, 224], PROFILE.opt, PROFILE.max))


def test_parser_errors_name_the_node():
    """nvonnxparser's error objects (the stand-in's FakeParserError, as bound in pyOnnx.cpp)."""
    from stand_ins import FakeDriver, FakeParserError, FakeTensorRT, parser_error

    trt = FakeTensorRT(FakeDriver())
    err = FakeParserError(trt, parser_error(41, "/block1/attn/Conv", "Conv", desc="Unsupported grouped convolution "))
    assert describe_parser_error(err) == "node 41 '/block1/attn/Conv' (Conv): Unsupported grouped convolution [UNSUPPORTED_NODE]"
    model = FakeParserError(trt, parser_error(desc="Invalid model", code="INVALID_GRAPH"))
    assert describe_parser_error(model) == "model: Invalid model [INVALID_GRAPH]"

    class Opaque:  # a parser without the accessors: its own text is used
        def __str__(self):
            return "In node 3 (parse): INVALID_NODE\n"

    assert describe_parser_error(Opaque()) == "In node 3 (parse): INVALID_NODE"


def test_enum_member_names():
    assert member_name(SimpleNamespace(name="HALF")) == "HALF"

    class PybindLike:
        name = None

        def __str__(self):
            return "DataType.FLOAT"

    assert member_name(PybindLike()) == "FLOAT"


def test_layer_table_from_engine_inspector_json():
    """IEngineInspector JSON as TensorRT 10 writes it ("Format/Datatype") and as 11 does ("Datatype" + "Format"):
    the fixtures of tests/fixtures/tensorrt (where each was read: stand_ins.INSPECTOR_FIXTURES). Expected rows
    read off the fixtures by hand: the precision of a layer is that of its outputs."""
    from stand_ins import inspector_json

    rows = layer_rows(json.dumps(inspector_json("trt10")))
    assert [(r["type"], r["precision"]) for r in rows] == [
        ("Reformat", "fp16"), ("CaskConvolution", "fp16"), ("CaskGemmConvolution", "fp16"), ("Reformat", "fp32")]
    assert rows[1]["name"] == "/patch_embed1/proj/Conv + /patch_embed1/norm/BatchNormalization"
    assert rows[1]["tactic"].startswith("sm80_xmma_fprop_implicit_gemm_f16f16") and rows[0]["tactic"] == "0x0000000000000000"
    rows11 = layer_rows(json.dumps(inspector_json("trt11")))
    assert [(r["type"], r["precision"]) for r in rows11] == [("kgen", "fp16"), ("gemm", "fp16"), ("gemm", "fp32")]
    # several output precisions in one layer, in order, each once
    two = {"Layers": [{"Name": "q", "LayerType": "Scale", "Outputs": [
        {"Name": "a", "Datatype": "Int8"}, {"Name": "b", "Format/Datatype": "Row major linear FP32"},
        {"Name": "c", "Datatype": "Int8"}]}]}
    assert layer_rows(json.dumps(two))[0]["precision"] == "int8,fp32"
    # built without ProfilingVerbosity.DETAILED: layer names only
    names = layer_rows(json.dumps(inspector_json("names")))
    assert [r["name"] for r in names][1:3] == ["/patch_embed1/proj/Conv + /patch_embed1/norm/BatchNormalization",
                                               "/head/Gemm"]
    assert {(r["type"], r["precision"], r["tactic"]) for r in names} == {("", "", "")}


def test_validation_inputs_are_recut_to_the_engine_profile():
    rng = np.random.default_rng(0)
    groups = [InputGroup("random b1 224x224", [rng.normal(size=(1, 3, 224, 224)) for _ in range(2)]),
              InputGroup("random b3 224x224", [rng.normal(size=(3, 3, 224, 224)) for _ in range(2)]),
              InputGroup("random b3 160x160", [rng.normal(size=(3, 3, 160, 160))]),
              InputGroup("photos 224x224", [rng.normal(size=(4, 3, 224, 224)), rng.normal(size=(4, 3, 224, 224))])]
    out = groups_within_profile(groups, Profile([2, 3, 224, 224], [2, 3, 224, 224], [2, 3, 224, 224]))
    assert [g.label for g in out] == ["random b1 224x224", "random b3 224x224", "photos 224x224"]
    for g, original in zip(out, [groups[0], groups[1], groups[3]]):
        assert all(b.shape[0] == 2 for b in g.batches)
        flat = np.concatenate(g.batches)
        n = sum(len(b) for b in original.batches)
        assert np.array_equal(flat[:n], np.concatenate(original.batches))  # same images, in order
        assert all(np.array_equal(x, flat[n - 1]) for x in flat[n:])  # padding repeats the last image
        assert g.size == n  # and is not counted in the metrics
    wide = groups_within_profile(groups, Profile([1, 3, 128, 128], [8, 3, 224, 224], [32, 3, 256, 256]))
    assert [len(g.batches[0]) for g in wide] == [1, 3, 3, 4]  # the original batching, all sizes kept


# ---------------------------------------------------------------------------------------------------------------
# With the CUDA driver and TensorRT stand-ins (tests/stand_ins.py): the logger, the inspector, the backend.

def test_one_logger_per_process_and_a_capture_per_call(fake_gpu):
    from vanexport.runtime import tensorrt_engine as trt_engine

    trt = fake_gpu.trt
    logger = trt_engine.process_logger(trt)
    assert trt_engine.process_logger(trt) is logger  # never a second one (TensorRT objects keep theirs)
    trt.log(logger, "ERROR", "before any capture")
    with trt_engine.capture(trt) as outer:
        assert outer.logger is logger
        trt.log(logger, "ERROR", "first")
        with trt_engine.capture(trt) as inner:
            trt.log(logger, "WARNING", "careful")
            trt.log(logger, "INFO", "chatter")
            trt.log(logger, "INTERNAL_ERROR", "second")
        trt.log(logger, "ERROR", "third")
    trt.log(logger, "ERROR", "after")
    assert outer.errors == ["first", "second", "third"] and outer.warnings == ["careful"]
    assert inner.errors == ["second"] and inner.last_error() == "second"
    assert not logger.open
    with trt_engine.capture(trt) as quiet:
        pass
    assert quiet.last_error("no error message") == "no error message"


def _engine(fake_gpu, **spec):
    from stand_ins import plan_bytes

    from vanexport.runtime import cuda
    from vanexport.runtime import tensorrt_engine as trt_engine

    dev = cuda.Device(0)
    with trt_engine.capture(fake_gpu.trt) as log:
        runtime, engine = trt_engine.deserialize(fake_gpu.trt, log, plan_bytes(**spec))
    return dev, runtime, engine


def test_the_inspector_sees_formats_only_with_a_context_at_the_opt_shapes(fake_gpu):
    """Dynamic-batch plans: without an execution context whose inputs are set, TensorRT's inspector leaves out
    the formats, and with them the precision column (IEngineInspector::setExecutionContext)."""
    from vanexport.runtime import tensorrt_engine as trt_engine

    for fixture, precisions in [("trt10", ["fp16", "fp16", "fp16", "fp32"]), ("trt11", ["fp16", "fp16", "fp32"])]:
        dev, runtime, engine = _engine(fake_gpu, inspector=fixture)
        bare = layer_rows(engine.create_engine_inspector().get_engine_information(
            fake_gpu.trt.LayerInformationFormat.JSON))
        assert [r["precision"] for r in bare] == [""] * len(precisions)
        created = []
        make = engine.create_execution_context
        engine.create_execution_context = lambda: created.append(make()) or created[-1]
        rows = trt_engine.engine_layers(fake_gpu.trt, engine)
        assert [r["precision"] for r in rows] == precisions
        assert created[0].shape == (4, 3, 8, 8)  # the profile's opt shape
        del runtime, engine, created, make
        dev.close()


def test_dla_placement_from_the_layer_table():
    from stand_ins import inspector_json

    from vanexport.runtime.tensorrt_engine import dla_placement

    # a DLA build (layer names of a real one: NVIDIA/TensorRT#3143): one subgraph on the DLA, and the copies to and
    # from its memory ("to nvm", "from nvm", "copy finish"), which every DLA engine has: no layer fell back
    assert dla_placement(layer_rows(json.dumps(inspector_json("dla")))) == {"dla": 1, "gpu": 0}
    assert dla_placement(layer_rows(json.dumps(inspector_json("trt10")))) == {"dla": 0, "gpu": 4}
    rows = [{"name": "input to nvm", "type": "Reformat"}, {"name": "{ForeignNode[/stem/Conv.../block4/Add]}",
                                                             "type": ""},
            {"name": "t from nvm", "type": "Reformat"}, {"name": "t copy finish", "type": "Reformat"},
            {"name": "{ForeignNode[/block4/norm/LayerNorm...]}", "type": "Myelin"},  # Myelin runs on the GPU
            {"name": "/head/Gemm", "type": "CaskGemmConvolution"}]
    assert dla_placement(rows) == {"dla": 1, "gpu": 2}
    assert dla_placement([{"name": "conv", "type": "DLA"}]) == {"dla": 1, "gpu": 0}


def _plan(tmp_path, make_manifest, profile=((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)), name="m.plan", **edits):
    from stand_ins import plan_bytes

    from vanexport.formats.engine_manifest import manifest_path, write_manifest
    from vanexport.model.variants import Preprocessing

    plan = tmp_path / name
    plan.write_bytes(plan_bytes(profile=profile))
    m = make_manifest(plan)
    m.num_classes, m.preprocessing = 10, Preprocessing(input_size=8).to_dict()
    for k, v in edits.items():
        setattr(m, k, v)
    write_manifest(m, manifest_path(plan))
    return plan


def test_the_backend_runs_a_plan_without_pytorch(tmp_path, make_manifest, fake_gpu):
    from stand_ins import expected_logits

    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    driver = fake_gpu.driver
    backend = TensorRTBackend(_plan(tmp_path, make_manifest))
    rng = np.random.default_rng(0)
    x8 = rng.normal(size=(8, 3, 8, 8)).astype(np.float32)
    x2 = rng.normal(size=(2, 3, 8, 8)).astype(np.float64)  # converted to the engine's float32
    np.testing.assert_allclose(backend(x2), expected_logits(x2.astype(np.float32)), rtol=1e-6)
    allocs = [c for c in driver.calls if c[0] == "cuMemAlloc"]
    assert [c[1] for c in allocs] == [2 * 3 * 8 * 8 * 4, 2 * 10 * 4]  # input, output
    np.testing.assert_allclose(backend(x2[:1]), expected_logits(x2[:1].astype(np.float32)), rtol=1e-6)
    assert len([c for c in driver.calls if c[0] == "cuMemAlloc"]) == 2  # smaller batch: buffers reused
    np.testing.assert_allclose(backend(x8), expected_logits(x8), rtol=1e-6)
    assert len([c for c in driver.calls if c[0] == "cuMemAlloc"]) == 4  # larger: both grown, old ones freed
    assert len(driver.memory) == 2

    results = []
    t = threading.Thread(target=lambda: results.append(backend(x8)))  # a thread that did not load the plan
    t.start()
    t.join()
    np.testing.assert_array_equal(results[0], backend(x8))

    with pytest.raises(VanexportError, match="outside the engine's optimization profile"):
        backend(np.zeros((9, 3, 8, 8), np.float32))
    fake_gpu.trt.fail_build = "execute"
    with pytest.raises(VanexportError, match=r"failed to run m.plan \(2: \[executionContext.cpp::enqueueV3\] illegal"):
        backend(x2)

    context_gone = []
    weakref.finalize(backend.context, lambda: context_gone.append(len(driver.calls)))
    start = len(driver.calls)
    backend.close()
    frees = [i for i, c in enumerate(driver.calls) if c[0] == "cuMemFree" and i >= start]
    release = [i for i, c in enumerate(driver.calls) if c[0] == "cuDevicePrimaryCtxRelease"]
    assert len(context_gone) == 1 and len(frees) == 2 and context_gone[0] <= frees[0]  # TensorRT's objects first
    assert frees[-1] < release[0]  # and the context last
    assert not driver.memory and not driver.streams and driver.retained == {0: 0}
    assert not driver.abandoned


def test_a_failed_run_leaves_no_work_queued(tmp_path, make_manifest, fake_gpu):
    """TensorRT refusing to run after the input copy was queued: the copy still ends before the call returns, so
    the next call can regrow (free) that buffer, and the backend still works."""
    from stand_ins import expected_logits

    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    x = np.random.default_rng(4).normal(size=(8, 3, 8, 8)).astype(np.float32)
    with TensorRTBackend(_plan(tmp_path, make_manifest)) as backend:
        fake_gpu.trt.fail_build = "execute"
        with pytest.raises(VanexportError, match="failed to run"):
            backend(x[:2])
        assert not fake_gpu.driver.pending()
        fake_gpu.trt.fail_build = False
        np.testing.assert_allclose(backend(x), expected_logits(x), rtol=1e-6)  # buffers of 2 regrown to 8


def test_the_output_is_read_only_after_the_stream_is_synchronised(tmp_path, make_manifest, fake_gpu):
    """The copies and the engine run when the stream is synchronised (the stand-in's driver queues them): a
    backend that returned before synchronising would hand back an unwritten array."""
    from stand_ins import expected_logits

    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    driver = fake_gpu.driver
    with TensorRTBackend(_plan(tmp_path, make_manifest)) as backend:
        for batch in (3, 3, 5):  # the second call reuses the buffers the first one's output came back in
            x = np.random.default_rng(batch).normal(size=(batch, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(backend(x), expected_logits(x), rtol=1e-6)
            assert not driver.pending()
        kinds = [c[0] for c in driver.calls if c[0] in ("cuMemcpyHtoDAsync", "cuMemcpyDtoHAsync", "cuStreamSynchronize")]
        assert kinds == ["cuMemcpyHtoDAsync", "cuMemcpyDtoHAsync", "cuStreamSynchronize"] * 3


def test_a_plan_with_fp16_inputs_and_outputs(tmp_path, make_manifest, fake_gpu):
    """An engine built from an FP16-I/O ONNX file reports HALF tensors: the backend sends float16 and converts
    the float16 logits back to float32."""
    from stand_ins import expected_logits, plan_bytes

    from vanexport.formats.engine_manifest import manifest_path, write_manifest
    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    plan = tmp_path / "h.plan"
    plan.write_bytes(plan_bytes(io="float16"))
    write_manifest(make_manifest(plan), manifest_path(plan))
    x = np.random.default_rng(2).normal(size=(3, 3, 8, 8))
    with TensorRTBackend(plan) as backend:
        assert [t.dtype for t in backend.inputs + backend.outputs] == ["float16", "float16"]
        y = backend(x)
    x16 = x.astype(np.float16).astype(np.float32)  # what the engine sees
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected_logits(x16).astype(np.float16).astype(np.float32))
    copies = [c[2] for c in fake_gpu.driver.calls if c[0] in ("cuMemcpyHtoDAsync", "cuMemcpyDtoHAsync")]
    assert copies == [3 * 3 * 8 * 8 * 2, 3 * 10 * 2]  # two bytes a value, both ways


def test_teardown_frees_in_the_backends_own_context_from_any_thread(tmp_path, make_manifest, fake_gpu):
    """Two backends on two devices: closing the first while the second's context is current frees the first's
    memory in its own context (and leaves the second's current); closing from a thread that never made a context
    current, or dropping the last reference there (__del__), frees too. A free in the wrong context, or with none,
    fails in the stand-in (CUDA_ERROR_INVALID_CONTEXT), as it would leak on a GPU."""
    import gc

    from stand_ins import expected_logits

    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    driver = fake_gpu.driver
    driver.devices.append({"name": "NVIDIA A10", "cc": "8.6"})
    plan = _plan(tmp_path, make_manifest)
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)
    first, second = TensorRTBackend(plan, device=0), TensorRTBackend(plan, device=1)
    for backend in (first, second):
        np.testing.assert_allclose(backend(x), expected_logits(x), rtol=1e-6)
    owned = {ptr: dev for ptr, dev in driver.owner.items()}
    assert sorted(owned.values()) == [0, 0, 1, 1] and driver.current == 1
    first.close()
    assert driver.current == 1  # the caller's context is back
    freed = [(owned[ptr], current) for ptr, current, _ in driver.frees]
    assert freed == [(0, 0), (0, 0)]
    assert [e for e in fake_gpu.trt.events if e[0].startswith("del")][:3] == [
        ("del Context", 0), ("del Engine", 0), ("del Runtime", 0)]  # TensorRT's objects also went in their context

    closer = threading.Thread(target=second.close, name="closer")
    closer.start()
    closer.join()
    assert [(owned[ptr], current, thread) for ptr, current, thread in driver.frees[2:]] == [(1, 1, "closer")] * 2
    assert not driver.memory and not driver.streams and driver.retained == {0: 0, 1: 0}

    third = [TensorRTBackend(plan, device=1)]
    third[0](x)
    dropper = threading.Thread(target=lambda: (third.pop(), gc.collect()), name="dropper")
    dropper.start()
    dropper.join()
    assert [(current, thread) for _, current, thread in driver.frees[4:]] == [(1, "dropper")] * 2
    assert not driver.memory and driver.retained == {0: 0, 1: 0}


def test_plans_for_another_platform_or_damaged_are_refused(tmp_path, make_manifest, fake_gpu):
    from vanexport.machine import PlatformInfo
    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    jetson = PlatformInfo("Linux", "aarch64", "R36.4.3")
    plan = _plan(tmp_path, make_manifest, platform=jetson)
    with pytest.raises(VanexportError, match=r"built on Linux aarch64 \(Jetson Linux R36.4.3\), this machine is"):
        TensorRTBackend(plan)
    assert not any(e[0] == "Runtime" for e in fake_gpu.trt.events)  # TensorRT never saw it

    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"not a plan")
    from vanexport.formats.engine_manifest import manifest_path, write_manifest

    write_manifest(make_manifest(bad), manifest_path(bad))
    with pytest.raises(VanexportError, match=r"cannot load the plan \(1: \[stdArchiveReader.cpp.*Magic tag"):
        TensorRTBackend(bad)
    assert fake_gpu.driver.retained == {0: 0}  # the half-made backend let its context go


def test_predict_with_a_plan_whose_profile_starts_above_one(tmp_path, make_manifest, fake_gpu):
    """A profile with min batch 4: the last short chunk is padded with its last image, the padding dropped."""
    from PIL import Image
    from stand_ins import expected_logits

    from vanexport.data.preprocess import preprocess_image
    from vanexport.device.classify import load_classifier
    from vanexport.model.variants import Preprocessing

    plan = _plan(tmp_path, make_manifest, profile=((4, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8)))
    clf = load_classifier(plan)
    assert clf.choice.backend == "tensorrt" and "fits" in clf.choice.reason
    rng = np.random.default_rng(1)
    pics = [Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)) for _ in range(6)]
    x = np.stack([preprocess_image(p, Preprocessing(input_size=8)) for p in pics])
    np.testing.assert_allclose(clf.logits(x), expected_logits(x), rtol=1e-5)
    shapes = [c[2] for c in fake_gpu.driver.calls if c[0] == "cuMemcpyHtoDAsync"]
    assert shapes == [4 * 3 * 8 * 8 * 4] * 2  # two batches of 4: 4 images, then 2 padded to 4
    top = clf.classify(pics, topk=3)
    assert [t[0]["index"] for t in top] == list(expected_logits(x).argmax(1))


def test_inspect_a_plan_shows_its_layers_with_precisions(tmp_path, make_manifest, fake_gpu):
    from vanexport.inspection import inspect_file

    report = inspect_file(_plan(tmp_path, make_manifest))
    d = report.details
    assert d["hash_ok"] and d["fits_this_machine"]
    assert [r["precision"] for r in d["layers"]] == ["fp16", "fp16", "fp16", "fp32"]  # tests/fixtures/tensorrt
    assert [r["name"] for r in d["layers"]][1:3] == ["/patch_embed1/proj/Conv + /patch_embed1/norm/BatchNormalization",
                                                   "/head/Gemm"]
    assert fake_gpu.driver.retained == {0: 0}
