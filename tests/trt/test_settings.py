"""CLI flags -> BuildSettings -> optimization profile and Polygraphy CreateConfig arguments (no TensorRT needed)."""
import io
from types import SimpleNamespace

import pytest

from vanexport.errors import VanexportError
from vanexport.trt.settings import BuildSettings, config_options, network_flags, resolve_options, typing_mode

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
        MemoryPoolType=SimpleNamespace(WORKSPACE="MemoryPoolType.WORKSPACE"),
        HardwareCompatibilityLevel=SimpleNamespace(NONE="HCL.NONE", AMPERE_PLUS="HCL.AMPERE_PLUS",
                                                   SAME_COMPUTE_CAPABILITY="HCL.SAME_COMPUTE_CAPABILITY"))


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
    (profile,) = options.pop("profiles")
    assert tuple(profile["input"].min) == (1, 3, 224, 224) and tuple(profile["input"].max) == (16, 3, 224, 224)
    assert tuple(profile["input"].opt) == (8, 3, 224, 224)
    assert options == {"tf32": True, "memory_pool_limits": {"WORKSPACE": int(1.5 * 2**30)},
                       "builder_optimization_level": 4, "hardware_compatibility_level": "SAME_COMPUTE_CAPABILITY",
                       "version_compatible": True}
    # no precision flags in a strongly typed build (TensorRT rejects them, and 11 does not have them)
    assert "fp16" not in options and "int8" not in options
    weak = config_options(BuildSettings(precision="int8", weak_typing=True), shapes, "input", "weak")
    assert weak["fp16"] is True and weak["int8"] is True
    defaults = config_options(BuildSettings(), shapes, "input", "strong")
    assert set(defaults) == {"profiles", "tf32"}  # TensorRT's own defaults for everything not asked for


def test_polygraphy_create_config_gets_tensorrt_enums(tmp_path):
    """The real Polygraphy loader, constructed as the build does (it needs TensorRT only when called)."""
    from polygraphy.backend.trt import CreateConfig, PostprocessConfig

    from vanexport.trt.builder import make_config

    s = BuildSettings(workspace_gib=2, hw_compat="ampere+", opt_level=1, version_compatible=True)
    options = config_options(s, s.profile_shapes(DYNAMIC_BATCH, 224), "input", "strong")
    assert resolve_options(options, TRT10)["hardware_compatibility_level"] == "HCL.AMPERE_PLUS"
    cache = io.BytesIO(b"cache")
    config = make_config(TRT10, options, cache)
    assert isinstance(config, CreateConfig)
    assert config.memory_pool_limits == {"MemoryPoolType.WORKSPACE": 2 * 2**30}
    assert config.hardware_compatibility_level == "HCL.AMPERE_PLUS"
    assert config.builder_optimization_level == 1 and config.version_compatible is True
    assert config.timing_cache_path is cache and config.tf32 is False and config.fp16 is False
    assert config.profiles[0]["input"].max == (32, 3, 224, 224)
    assert isinstance(make_config(TRT10, options, None, dla_core=1), PostprocessConfig)
