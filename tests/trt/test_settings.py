"""CLI flags -> BuildSettings -> optimization profile and builder options, and the checks of what the installed
TensorRT and the GPU can build (no TensorRT needed)."""
from types import SimpleNamespace

import pytest

from vanexport.errors import VanexportError
from vanexport.machine import GpuInfo
from vanexport.trt.settings import (BuildSettings, config_options, default_workspace_bytes, dla_problem,
                                    hw_compat_problem, network_flags, typing_mode)

DYNAMIC_BATCH = ["batch", 3, 224, 224]
DYNAMIC_HW = ["batch", 3, "height", "width"]


def _stand_in_tensorrt(version: str, weak_typing: bool):
    """The few TensorRT enums these functions read, as the two releases have them (`trt-api check`): 10.16 has
    BuilderFlag.FP16/INT8 and an opt-in STRONGLY_TYPED network flag (value 1); 11.4 removed FP16/INT8 and keeps
    STRONGLY_TYPED only as a deprecated, ignored flag."""
    builder_flags = {"TF32": 7, "VERSION_COMPATIBLE": 17, "GPU_FALLBACK": 1}
    if weak_typing:
        builder_flags.update(FP16=0, INT8=2)
    return SimpleNamespace(
        __version__=version,
        BuilderFlag=SimpleNamespace(**builder_flags),
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1),
        HardwareCompatibilityLevel=SimpleNamespace(NONE=0, AMPERE_PLUS=1, SAME_COMPUTE_CAPABILITY=2))


TRT10 = _stand_in_tensorrt("10.16.1.11", weak_typing=True)
TRT11 = _stand_in_tensorrt("11.4.0.106", weak_typing=False)


def test_default_profile_for_a_dynamic_batch():
    shapes = BuildSettings().profile_shapes(DYNAMIC_BATCH, 224)
    assert shapes == {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}


@pytest.mark.parametrize("flags, expected", [
    ({"max_batch": 4}, (1, 4, 4)),  # opt follows a small max down
    ({"min_batch": 16}, (16, 16, 32)),  # and a large min up
    ({"min_batch": 2, "opt_batch": 3, "max_batch": 64}, (2, 3, 64)),
    ({"min_batch": 40}, (40, 40, 40)),
])
def test_batch_flags_fill_in_around_each_other(flags, expected):
    shapes = BuildSettings(**flags).profile_shapes(DYNAMIC_BATCH, 224)
    assert (shapes["min"][0], shapes["opt"][0], shapes["max"][0]) == expected


def test_dynamic_hw_profile_comes_from_the_size_flags():
    s = BuildSettings(img_size=224, min_img_size=160, max_img_size=320, max_batch=8)
    shapes = s.profile_shapes(DYNAMIC_HW, 192)
    assert shapes["min"] == [1, 3, 160, 160] and shapes["opt"] == [8, 3, 224, 224] and shapes["max"] == [8, 3, 320, 320]
    # without flags a dynamic-H/W model gets a single-size profile at its export size
    assert BuildSettings().profile_shapes(DYNAMIC_HW, 192)["max"] == [32, 3, 192, 192]


def test_static_model_pins_the_profile():
    assert BuildSettings().profile_shapes([4, 3, 256, 256], 256) == {k: [4, 3, 256, 256] for k in ("min", "opt", "max")}
    assert BuildSettings(max_batch=4, img_size=256).profile_shapes([4, 3, 256, 256], 256)["max"] == [4, 3, 256, 256]


@pytest.mark.parametrize("flags, shape, message", [
    ({"max_batch": 8}, [4, 3, 224, 224], "static batch of 4, so the engine cannot take batch 8"),
    ({"img_size": 256}, DYNAMIC_BATCH, "takes only 224x224 images, not 256"),
    ({"min_batch": 8, "max_batch": 4}, DYNAMIC_BATCH, "min <= opt <= max (got 8, 4, 4)"),
    ({"min_img_size": 256}, DYNAMIC_HW, "image sizes must satisfy min <= opt <= max (got 256, 224, 224)"),
])
def test_profile_contradictions_are_user_errors(flags, shape, message):
    with pytest.raises(VanexportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BuildSettings(**flags).profile_shapes(shape, 224)


@pytest.mark.parametrize("flags, message", [
    ({"precision": "fp64"}, "unknown precision"),
    ({"max_batch": 0}, "--max-batch 0 is not positive"),
    ({"img_size": 100}, "not a multiple of 32"),
    ({"workspace_gib": 0}, "--workspace 0 GiB"),
    ({"opt_level": 6}, "--opt-level 6 is out of range"),
    ({"hw_compat": "turing+"}, "unknown hardware compatibility"),
    ({"dla_core": 0, "hw_compat": "ampere+"}, "exclude each other"),
    ({"weak_typing": True}, "--weak-typing needs --fp16 or --int8"),
])
def test_bad_flags_fail_before_any_work(flags, message):
    with pytest.raises(VanexportError, match=message):
        BuildSettings(**flags)


def test_settings_round_trip_through_the_manifest_dict():
    s = BuildSettings(precision="fp16", max_batch=4, opt_level=5, hw_compat="ampere+", version_compatible=True)
    assert BuildSettings.from_dict({**s.to_dict(), "unknown_future_key": 1}) == s
    assert BuildSettings.from_dict(s.to_dict()) != s.with_precision("int8")


def test_strong_typing_is_the_default_and_uses_the_flag_only_where_it_is_opt_in():
    s = BuildSettings(precision="fp16")
    assert typing_mode(TRT10, s) == typing_mode(TRT11, s) == "strong"
    assert network_flags(TRT10, "strong") == 1 << 1  # STRONGLY_TYPED on 10
    assert network_flags(TRT11, "strong") == 0  # 11: always strongly typed, the flag is deprecated
    assert network_flags(TRT10, "weak") == 0


def test_weak_typing_only_where_the_installed_tensorrt_still_has_it():
    weak = BuildSettings(precision="int8", weak_typing=True)
    assert typing_mode(TRT10, weak) == "weak"
    with pytest.raises(VanexportError, match=r"TensorRT 11.4.0.106 has no weak typing \(BuilderFlag.INT8 was removed"):
        typing_mode(TRT11, weak)


def test_config_options_map_every_flag():
    s = BuildSettings(precision="fp16", max_batch=16, workspace_gib=1.5, opt_level=4, hw_compat="same-cc",
                      version_compatible=True, tf32=True)
    shapes = s.profile_shapes(DYNAMIC_BATCH, 224)
    options = config_options(s, shapes, "input", "strong")
    assert options == {"profile": {"input": "input", "min": (1, 3, 224, 224), "opt": (8, 3, 224, 224),
                                   "max": (16, 3, 224, 224)},
                       "tf32": True, "workspace_bytes": int(1.5 * 2**30), "builder_optimization_level": 4,
                       "hardware_compatibility_level": "SAME_COMPUTE_CAPABILITY", "version_compatible": True}
    # no precision flags in a strongly typed build (TensorRT rejects them, and 11 does not have them)
    weak = config_options(BuildSettings(precision="int8", weak_typing=True), shapes, "input", "weak")
    assert weak["precision_flags"] == ["FP16", "INT8"]
    assert config_options(BuildSettings(precision="fp16", weak_typing=True), shapes, "input", "weak")[
        "precision_flags"] == ["FP16"]
    defaults = config_options(BuildSettings(), shapes, "input", "strong")
    assert set(defaults) == {"profile", "tf32"}  # TensorRT's own defaults for everything not asked for
    # the integrated-GPU cap applies only when --workspace is not given
    assert config_options(BuildSettings(), shapes, "input", "strong", 2**29)["workspace_bytes"] == 2**29
    assert config_options(s, shapes, "input", "strong", 2**29)["workspace_bytes"] == int(1.5 * 2**30)
    dla = BuildSettings(precision="fp16", dla_core=1)
    assert config_options(dla, dla.profile_shapes(DYNAMIC_BATCH, 224), "input", "strong")["dla_core"] == 1


@pytest.mark.parametrize("flags, expected", [
    ({}, (1, 1, 1)),
    ({"max_batch": 4}, (4, 4, 4)),
    ({"min_batch": 2, "opt_batch": 2, "max_batch": 2}, (2, 2, 2)),
])
def test_dla_profiles_are_static(flags, expected):
    """The DLA has no dynamic dimensions: min = opt = max (TensorRT's DLA restrictions), or every layer silently
    falls back to the GPU."""
    shapes = BuildSettings(precision="int8", dla_core=0, **flags).profile_shapes(DYNAMIC_BATCH, 224)
    assert (shapes["min"][0], shapes["opt"][0], shapes["max"][0]) == expected


def test_dla_rules_are_user_errors():
    with pytest.raises(VanexportError, match=r"one batch size, not a range \(got \[1, 8\]\)"):
        BuildSettings(precision="fp16", dla_core=0, min_batch=1, max_batch=8).profile_shapes(DYNAMIC_BATCH, 224)
    with pytest.raises(VanexportError, match="one image size, not 160..320"):
        BuildSettings(precision="fp16", dla_core=0, min_img_size=160, max_img_size=320).profile_shapes(DYNAMIC_HW, 224)
    with pytest.raises(VanexportError, match="FP16 and INT8 networks only"):
        BuildSettings(dla_core=0)


def test_the_workspace_is_capped_on_integrated_gpus():
    assert default_workspace_bytes(False, 8 * 2**30) is None  # discrete: TensorRT's default
    assert default_workspace_bytes(True, 32 * 2**30) == 2**30  # a Jetson with room: 1 GiB
    assert default_workspace_bytes(True, 2 * 2**30) == 2**29  # a quarter of what is available
    assert default_workspace_bytes(True, 2**20) == 64 * 2**20  # never below 64 MiB
    assert default_workspace_bytes(True, None) == 2**30  # /proc/meminfo unreadable


A10 = GpuInfo("NVIDIA A10", "8.6")
T4 = GpuInfo("Tesla T4", "7.5")
ORIN = GpuInfo("Orin", "8.7", integrated=True)


def test_hardware_compatibility_checks():
    old = SimpleNamespace(__version__="10.3.0.30", HardwareCompatibilityLevel=SimpleNamespace(NONE=0, AMPERE_PLUS=1))
    assert hw_compat_problem(TRT10, BuildSettings(), ORIN) is None
    assert hw_compat_problem(TRT10, BuildSettings(hw_compat="ampere+"), A10) is None
    assert "needs an Ampere or newer GPU" in hw_compat_problem(TRT10, BuildSettings(hw_compat="ampere+"), T4)[0]
    assert "not supported on Jetson" in hw_compat_problem(TRT10, BuildSettings(hw_compat="ampere+"), ORIN)[0]
    problem, hint = hw_compat_problem(old, BuildSettings(hw_compat="same-cc"), A10)
    assert "TensorRT 10.3.0.30 has no --hw-compat same-cc" in problem and "10.9" in problem
    assert hw_compat_problem(old, BuildSettings(hw_compat="ampere+"), A10) is None


@pytest.mark.parametrize("version, gpu, system, refused", [
    ("10.3.0.30", ORIN, "Linux", None),  # JetPack 6
    ("10.7.0.23", ORIN, "Linux", None),  # the last 10.x with DLA
    ("10.8.0.43", ORIN, "Linux", "has no DLA support"),
    ("11.2.0.1", ORIN, "Linux", "has no DLA support"),
    ("11.4.0.106", ORIN, "Linux", "has no DLA support"),  # 11.4.0: Windows on ARM only
    ("11.4.0.106", ORIN, "Windows", None),
    ("11.4.1.3", ORIN, "Linux", None),  # back on JetPack 7.2.2+
    ("10.3.0.30", A10, "Linux", "is a discrete GPU"),
])
def test_which_tensorrt_releases_have_dla(version, gpu, system, refused):
    problem = dla_problem(version, gpu, system)
    assert (problem is None) if refused is None else (refused in problem[0])
