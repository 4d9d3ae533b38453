"""Backend selection order, with manifests of engines built for other devices."""
import pytest

from vanexport.device.select import Candidate, Device, choose, plan_fits
from vanexport.machine import GpuInfo

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
ORIN = GpuInfo("Orin", "8.7")
T4 = GpuInfo("Tesla T4", "7.5")


def plan_manifest(trt="10.16.1.11", cc="9.0", precision="fp16", vc=False, hw="none", gpu="NVIDIA H100 80GB HBM3",
                  name="van.plan"):
    """An engine manifest as `vanexport trt` writes it (trt.manifest.EngineManifest), for a device we are not."""
    from vanexport.formats.engine_manifest import EngineManifest

    return EngineManifest.from_dict(dict(
        plan={"file": name, "sha256": "0" * 64, "bytes": 1}, source_onnx={"sha256": "1" * 64, "precision": precision},
        tensorrt={"version": trt, "version_compatible": vc, "hardware_compatibility": hw},
        gpu={"name": gpu, "compute_capability": cc}, precision=precision,
        inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 224, 224]}],
        outputs=[{"name": "logits", "dtype": "float32", "shape": [-1, 1000]}], preprocessing={}, num_classes=1000,
        model={}, build={}, vanexport_version="0.1.0"))


def plan(name, validated=None, **kw):
    m = plan_manifest(name=name, **kw)
    return Candidate("plan", f"/b/engines/{name}", m.precision, m, validated)


ONNX = [Candidate("onnx", "/b/onnx/m_fp32.onnx", "fp32", None, True),
        Candidate("onnx", "/b/onnx/m_fp16.onnx", "fp16", None, True),
        Candidate("onnx", "/b/onnx/m_int8.onnx", "int8", None, True)]


def order(choices):
    return [(c.backend, c.candidate.path.rsplit("/", 1)[1]) for c in choices]


def test_fitting_plan_first_then_ort_cuda_then_cpu():
    device = Device("10.16.1.11", (H100,), ("CUDAExecutionProvider", "CPUExecutionProvider"))
    cands = ONNX + [plan("orin_fp16.plan", trt="10.3.0", cc="8.7", gpu="Orin"),   # another device's plan
                    plan("h100_fp32.plan", precision="fp32"),
                    plan("h100_fp16.plan"),
                    plan("h100_int8.plan", precision="int8", validated=False)]  # failed validation
    choices = choose(cands, device)
    assert order(choices) == [
        ("tensorrt", "h100_fp16.plan"), ("tensorrt", "h100_fp32.plan"),
        ("onnxruntime-cuda", "m_fp16.onnx"), ("onnxruntime-cuda", "m_fp32.onnx"), ("onnxruntime-cuda", "m_int8.onnx"),
        ("onnxruntime-cpu", "m_fp32.onnx"), ("onnxruntime-cpu", "m_fp16.onnx"), ("onnxruntime-cpu", "m_int8.onnx")]
    skipped = " | ".join(choices[0].skipped)
    assert "orin_fp16.plan: orin_fp16.plan was built with TensorRT 10.3.0 but this machine has TensorRT 10.16.1.11" in skipped
    assert "h100_int8.plan: failed its validation" in skipped
    assert "compute capability 9.0 matches" in choices[0].reason


def test_jetson_picks_its_own_plan_and_not_the_h100_one():
    device = Device("10.3.0", (ORIN,), ("CPUExecutionProvider",))
    choices = choose(ONNX[:1] + [plan("h100.plan", trt="10.3.0"), plan("orin.plan", trt="10.3.0", cc="8.7", gpu="Orin")],
                     device)
    assert order(choices) == [("tensorrt", "orin.plan"), ("onnxruntime-cpu", "m_fp32.onnx")]
    assert any("built for compute capability 9.0" in s and "this GPU (Orin) has 8.7" in s for s in choices[0].skipped)
    assert any("no CUDA provider" in s for s in choices[0].skipped)


def test_no_tensorrt_no_gpu_means_onnx_runtime_cpu():
    choices = choose(ONNX + [plan("h100.plan")], Device(None, (), ("CPUExecutionProvider",)))
    assert order(choices)[0] == ("onnxruntime-cpu", "m_fp32.onnx")
    assert "h100.plan: TensorRT is not installed" in choices[0].skipped


@pytest.mark.parametrize("manifest, device, fits, why", [
    (plan_manifest(trt="10.8.0.40", vc=True), Device("10.16.1.11", (H100,)), True, "compute capability 9.0 matches"),
    (plan_manifest(trt="10.8.0.40", vc=True), Device("10.4.0.26", (H100,)), False, "the older TensorRT 10.4.0.26"),
    (plan_manifest(trt="10.8.0.40"), Device("10.8.0.40", (H100,)), True, "matches"),
    (plan_manifest(trt="10.8.0.40"), Device("10.16.1.11", (H100,)), False, "built with TensorRT 10.8.0.40"),
    (plan_manifest(cc="8.6", hw="ampere+"), Device("10.16.1.11", (H100,)), True, "Ampere+ plan"),
    (plan_manifest(cc="8.6", hw="ampere+"), Device("10.16.1.11", (T4,)), False, "this GPU (Tesla T4) has compute capability 7.5"),
    (plan_manifest(cc="8.6"), Device("10.16.1.11", (H100,)), False, "built for compute capability 8.6"),
    (plan_manifest(cc="9.0"), Device("10.16.1.11", ()), False, "no CUDA GPU"),
    (plan_manifest(), Device(None, (H100,)), False, "TensorRT is not installed"),
    (None, Device("10.16.1.11", (H100,)), False, "it has no manifest"),
])
def test_plan_fits(manifest, device, fits, why):
    ok, reason = plan_fits(manifest, device)
    assert ok is fits and why in reason


def test_backend_and_precision_filters():
    device = Device("10.16.1.11", (H100,), ("CUDAExecutionProvider", "CPUExecutionProvider"))
    cands = ONNX + [plan("h100_fp16.plan")]
    assert order(choose(cands, device, backend="onnxruntime-cpu")) == [
        ("onnxruntime-cpu", "m_fp32.onnx"), ("onnxruntime-cpu", "m_fp16.onnx"), ("onnxruntime-cpu", "m_int8.onnx")]
    assert order(choose(cands, device, precision="fp16")) == [
        ("tensorrt", "h100_fp16.plan"), ("onnxruntime-cuda", "m_fp16.onnx"), ("onnxruntime-cpu", "m_fp16.onnx")]
    assert choose(cands, device, backend="tensorrt", precision="int8") == []


def test_loader_falls_back_when_the_best_backend_does_not_start(b0_bundle, tmp_path, make_manifest):
    """A device that claims TensorRT and a GPU: the plan is chosen first; it cannot start here (no TensorRT), so
    ONNX Runtime runs, and the result says why the plan was not used."""
    import shutil

    from vanexport.device.classify import load_classifier
    from vanexport.device.archive import read_bundle
    from vanexport.ship.bundle import add_engine_to_bundle
    from vanexport.formats.engine_manifest import manifest_path, write_manifest

    bundle = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], bundle)
    p = tmp_path / "h100_fp16.plan"
    p.write_bytes(b"opaque bytes standing in for a plan")
    write_manifest(make_manifest(p, gpu=H100, source_sha=read_bundle(bundle)["models"][0]["sha256"]), manifest_path(p))
    add_engine_to_bundle(bundle, p)
    device = Device("10.16.1.11", (H100,), ("CPUExecutionProvider",))
    tried = []
    clf = load_classifier(bundle, device=device, progress=tried.append)
    assert tried[1] == "starting tensorrt on h100_fp16.plan"
    assert clf.choice.backend == "onnxruntime-cpu"
    assert any(s.startswith("tensorrt on h100_fp16.plan:") for s in clf.describe()["skipped"])


def test_classifier_respects_an_engine_profile(b0_onnx_64):
    """An engine takes at most its profile's max batch: the classifier splits larger requests."""
    import numpy as np

    from vanexport.model.variants import Preprocessing
    from vanexport.device.classify import Classifier
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from vanexport.device.select import Choice
    from vanexport.formats.engine_manifest import Profile

    ort = OnnxRuntimeBackend(b0_onnx_64)
    seen = []

    class ProfiledBackend:  # the attribute the TensorRT backend exposes, around a real ONNX Runtime session
        profile = Profile([1, 3, 64, 64], [2, 3, 64, 64], [3, 3, 64, 64])

        def __call__(self, x):
            seen.append(len(x))
            return ort(x)

    clf = Classifier(ProfiledBackend(), Choice("tensorrt", Candidate("plan", "x.plan", "fp32"), "test"),
                     [str(i) for i in range(1000)], Preprocessing().at_size(64), None, "x.plan", Device())
    x = np.random.default_rng(0).uniform(-1, 1, (7, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(clf.logits(x), ort(x))
    assert seen == [3, 3, 1]


def test_a_plan_for_another_platform_is_skipped_with_the_reason():
    from vanexport.machine import PlatformInfo

    jetson = plan("orin.plan", trt="10.3.0", cc="8.7", gpu="Orin")
    jetson.manifest.platform = PlatformInfo("Linux", "aarch64", "R36.4.3")
    jetson.manifest.gpu = GpuInfo("Orin", "8.7", integrated=True)
    here = Device("10.3.0", (GpuInfo("Orin", "8.7", integrated=True),), ("CPUExecutionProvider",),
                  PlatformInfo("Linux", "aarch64", "R36.4.3"))
    assert choose(ONNX[:1] + [jetson], here)[0].backend == "tensorrt"
    # the same compute capability and TensorRT on an Arm server with a discrete GPU: not the Jetson's plan
    server = Device("10.3.0", (GpuInfo("GH200", "8.7"),), ("CPUExecutionProvider",), PlatformInfo("Linux", "aarch64"))
    choices = choose(ONNX[:1] + [jetson], server)
    assert order(choices) == [("onnxruntime-cpu", "m_fp32.onnx")]
    assert "orin.plan: orin.plan was built for an integrated GPU (Jetson)" in choices[0].skipped[0]


# --- the CPU backends: ONNX Runtime and OpenVINO ---------------------------------------------------------------

CPU_ONLY = Device(None, (), ("CPUExecutionProvider",), openvino="2026.4.1")


def test_cpu_backends_in_measured_order_each_fp32_first():
    from vanexport.device.select import CPU_BACKENDS

    choices = choose(ONNX, CPU_ONLY)
    expected = [(b, f) for b in CPU_BACKENDS for f in ("m_fp32.onnx", "m_fp16.onnx", "m_int8.onnx")]
    assert order(choices) == expected
    ov = next(c for c in choices if c.backend == "openvino")
    assert ov.reason == "OpenVINO 2026.4.1 CPU on m_fp32.onnx" and ov.precision == "fp32"


@pytest.mark.parametrize("backend, precision, message", [
    ("openvino", None, "OpenVINO is not installed"),
    ("auto", "bf16", "OpenVINO is not installed"),
    ("onnxruntime-cpu", "bf16", "only OpenVINO computes an FP32 file in BF16, not onnxruntime-cpu"),
])
def test_openvino_requests_that_cannot_be_met_are_one_line(b0_onnx_64, backend, precision, message):
    from vanexport.device.classify import load_classifier
    from vanexport.errors import VanexportError

    no_ov = Device(None, (), ("CPUExecutionProvider",))
    assert {c.backend for c in choose(ONNX, no_ov)} == {"onnxruntime-cpu"}  # auto simply goes without it
    with pytest.raises(VanexportError, match=message):
        load_classifier(b0_onnx_64, backend=backend, precision=precision, device=no_ov)


def test_bf16_is_the_fp32_file_through_openvino_only():
    choices = choose(ONNX, CPU_ONLY, precision="bf16")
    assert order(choices) == [("openvino", "m_fp32.onnx")]
    c = choices[0]
    assert (c.precision, c.candidate.precision, c.compute_precision) == ("bf16", "fp32", "bf16")
    assert c.to_dict()["precision"] == "bf16" and c.to_dict()["file_precision"] == "fp32"
    assert "in BF16 (this CPU's native lower precision)" in c.reason
    assert choose(ONNX, CPU_ONLY, backend="onnxruntime-cpu", precision="bf16") == []
    assert order(choose(ONNX, CPU_ONLY, backend="openvino", precision="fp16")) == [("openvino", "m_fp16.onnx")]
