"""The manifest beside a plan: written atomically, read back, and every refusal a loader makes from it."""
import json
import re

import pytest

from vanexport.errors import VanexportError
from vanexport.files import sha256_file
from vanexport.machine import GpuInfo, PlatformInfo
from vanexport.formats.engine_manifest import (SCHEMA, check_loadable, check_plan_hash, compatibility_problem,
                                    compatibility_warnings, manifest_path, read_manifest, tensorrt_loads,
                                    write_manifest)

A10 = GpuInfo("NVIDIA A10", "8.6", "12.4")
A40 = GpuInfo("NVIDIA A40", "8.6", "12.4")
L4 = GpuInfo("NVIDIA L4", "8.9", "12.4")
T4 = GpuInfo("Tesla T4", "7.5", "12.4")


@pytest.fixture
def plan(tmp_path):
    """Plan bytes and their manifest. The bytes are not an engine: these checks run before TensorRT sees them."""
    path = tmp_path / "van_b0_224_fp16.plan"
    path.write_bytes(bytes(range(256)) * 64)
    return path


def test_manifest_sits_beside_the_plan_and_round_trips(plan, make_manifest):
    m = make_manifest(plan)
    path = write_manifest(m, manifest_path(plan))
    assert path == plan.parent / "van_b0_224_fp16.manifest.json"
    assert not list(plan.parent.glob("*.tmp"))
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["plan"]["sha256"] == sha256_file(plan)
    assert read_manifest(plan) == m
    assert plan.read_bytes() == bytes(range(256)) * 64  # the plan itself is never touched


def test_missing_or_broken_manifest_is_a_one_line_error(plan, make_manifest):
    with pytest.raises(VanexportError, match="has no manifest .van_b0_224_fp16.manifest.json is missing"):
        read_manifest(plan)
    manifest_path(plan).write_text("{not json")
    with pytest.raises(VanexportError, match="is not readable"):
        read_manifest(plan)
    manifest_path(plan).write_text(json.dumps({**make_manifest(plan).to_dict(), "schema": "other/9"}))
    with pytest.raises(VanexportError, match="schema 'other/9'"):
        read_manifest(plan)


def test_a_plan_fits_the_machine_that_built_it(plan, make_manifest):
    assert compatibility_problem(make_manifest(plan), "10.16.1.11", A10) is None


@pytest.mark.parametrize("kwargs, trt, gpu, message", [
    ({}, "10.16.2.1", A10, "built with TensorRT 10.16.1.11 but this machine has TensorRT 10.16.2.1"),
    ({}, "11.4.0.106", A10, "built with TensorRT 10.16.1.11 but this machine has TensorRT 11.4.0.106"),
    ({"version_compatible": True, "trt_version": "10.16.1.11"}, "10.8.0.43", A10, "the older TensorRT 10.8.0.43"),
    # "a TensorRT 8 engine cannot run with a TensorRT 11 runtime" (support matrix 11.4.1, Engine Portability)
    ({"version_compatible": True, "trt_version": "8.6.1.6"}, "11.4.0.106", A10,
     r"across majors only 8 to 10 and 10 to 11\) but this machine has TensorRT 11.4.0.106"),
    ({"version_compatible": True, "trt_version": "11.4.0.106"}, "10.16.1.11", A10, "the older TensorRT 10.16.1.11"),
    ({}, "10.16.1.11", L4, "built for compute capability 8.6 .NVIDIA A10. but this GPU .NVIDIA L4. has 8.9"),
    ({"hw": "same-cc"}, "10.16.1.11", L4, "built for compute capability 8.6"),
    ({"hw": "ampere+"}, "10.16.1.11", T4, r"built for Ampere or newer GPUs .*\(Tesla T4\) has compute capability 7.5"),
])
def test_refusals(plan, make_manifest, kwargs, trt, gpu, message):
    problem, hint = compatibility_problem(make_manifest(plan, **kwargs), trt, gpu)
    assert re.search(message, problem), problem
    assert "vanexport trt" in hint
    with pytest.raises(VanexportError, match=message):
        check_loadable(plan, make_manifest(plan, **kwargs), trt, gpu)


@pytest.mark.parametrize("kwargs, trt, gpu", [
    ({"version_compatible": True}, "10.16.1.11", A10),
    ({"version_compatible": True}, "10.18.0.1", A10),  # version-compatible: newer runtimes run it
    ({"version_compatible": True}, "11.4.0.106", A10),  # and a TensorRT 11 runtime a 10.x plan
    ({"version_compatible": True, "trt_version": "8.6.1.6"}, "10.16.1.11", A10),  # and a 10.x runtime an 8.x plan
    ({"hw": "ampere+"}, "10.16.1.11", L4),  # any compute capability >= 8.0
    ({"hw": "ampere+", "gpu": L4}, "10.16.1.11", GpuInfo("NVIDIA H100", "9.0")),
    ({"hw": "same-cc"}, "10.16.1.11", A40),
    ({}, "10.16.1.11", A40),  # same compute capability, other model: runs (with a warning)
])
def test_compatibility_settings_allow(plan, make_manifest, kwargs, trt, gpu):
    assert compatibility_problem(make_manifest(plan, **kwargs), trt, gpu) is None


# (built with, runtime, loads when built version-compatible), read off the support matrix's "Engine Portability"
# (TensorRT 11.4.1): newer runtimes of the plan's own major, and across majors only 10 -> 11 and 8 -> 10.
@pytest.mark.parametrize("built, runtime, loads", [
    ("10.3.0.26", "10.16.1.11", True),
    ("10.16.1.11", "10.3.0.26", False),  # never an older runtime
    ("10.16.1.11", "11.4.0.106", True),
    ("8.6.1.6", "10.16.1.11", True),
    ("8.6.1.6", "11.4.0.106", False),  # the matrix's own example
    ("8.6.1.6", "9.3.0.1", False),  # "no other combination across major versions"
    ("10.16.1.11", "12.0.0.1", False),  # nor into a major the matrix does not name yet
    ("11.4.0.106", "10.16.1.11", False),
    ("10.16.1.11", "10.16", True),  # a runtime known as a prefix ("10.16.x") is compared on it
])
def test_version_compatible_plans_load_where_the_support_matrix_says(built, runtime, loads):
    assert tensorrt_loads(built, runtime, version_compatible=True) is loads
    assert tensorrt_loads(built, runtime, version_compatible=False) is (built == runtime or runtime == "10.16")


def test_hint_names_the_build_flag_that_would_have_allowed_it(plan, make_manifest):
    assert "--version-compatible" in compatibility_problem(make_manifest(plan), "10.17.0.1", A10)[1]
    assert "--hw-compat ampere+" in compatibility_problem(make_manifest(plan), "10.16.1.11", L4)[1]


def test_warnings_for_what_runs_but_deserves_a_word(plan, make_manifest):
    assert "tuned on a NVIDIA A10, this is a NVIDIA A40" in compatibility_warnings(make_manifest(plan), A40)[0]
    assert compatibility_warnings(make_manifest(plan), A10) == []
    assert "lean runtime" in compatibility_warnings(make_manifest(plan, version_compatible=True), A10)[0]
    assert check_loadable(plan, make_manifest(plan), "10.16.1.11", A40)  # returns the warning, does not raise


def test_tampered_plan_is_refused(plan, make_manifest):
    m = make_manifest(plan)
    assert check_plan_hash(plan, m) == sha256_file(plan)
    data = bytearray(plan.read_bytes())
    data[100] ^= 1
    plan.write_bytes(bytes(data))
    with pytest.raises(VanexportError, match="does not match its manifest .* it was modified or replaced"):
        check_loadable(plan, m, "10.16.1.11", A10)


JETSON = PlatformInfo("Linux", "aarch64", "R36.4.3")
X86 = PlatformInfo("Linux", "x86_64")
ORIN = GpuInfo("Orin", "8.7", integrated=True)


def test_the_platform_is_recorded_and_checked(plan, make_manifest):
    """Plans do not move across operating systems, CPU architectures, or between a Jetson and a discrete GPU."""
    m = make_manifest(plan, gpu=ORIN)
    m.platform = JETSON
    write_manifest(m, manifest_path(plan))
    back = read_manifest(plan)
    assert back.platform == JETSON and back.gpu.integrated is True
    assert compatibility_problem(back, "10.16.1.11", ORIN, JETSON) is None
    problem, hint = compatibility_problem(back, "10.16.1.11", ORIN, X86)
    assert problem.startswith("van_b0_224_fp16.plan was built on Linux aarch64 (Jetson Linux R36.4.3), this machine "
                              "is Linux x86_64") and "vanexport trt" in hint
    # same architecture, not a Jetson: an Arm server with a discrete GPU (and the same compute capability)
    assert "built for an integrated GPU (Jetson), this machine has a discrete GPU" in compatibility_problem(
        back, "10.16.1.11", GpuInfo("GH200", "8.7"), PlatformInfo("Linux", "aarch64"))[0]
    with pytest.raises(VanexportError, match="was built on Linux aarch64"):
        check_loadable(plan, back, "10.16.1.11", ORIN, X86)
    assert compatibility_problem(back, "10.16.1.11", ORIN) is None  # no platform given: not checked


def test_manifests_written_before_the_new_fields_still_load(plan, make_manifest):
    d = make_manifest(plan).to_dict()
    for key in ("platform",):
        d.pop(key)
    d["gpu"].pop("integrated")
    for key in ("workspace_bytes", "placement"):
        d["build"].pop(key)
    manifest_path(plan).write_text(json.dumps(d))
    m = read_manifest(plan)
    assert m.platform is None and m.gpu.integrated is False and m.build.placement is None
    assert compatibility_problem(m, "10.16.1.11", A10, X86) is None  # nothing recorded, nothing refused
