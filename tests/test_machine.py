"""Without TensorRT, a driver or a GPU every TensorRT command fails fast, in one line, saying what to install."""
import importlib.util
import json
import sys
import types

import pytest
from click.testing import CliRunner
from stand_ins import FakeDriver

from vanexport.cli import cli
from vanexport.errors import VanexportError
from vanexport import machine
from vanexport.machine import cuda_gpu, import_tensorrt, require_tensorrt

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _has_driver() -> bool:
    try:
        machine._load_libcuda()
        return True
    except VanexportError:
        return False


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_no_tensorrt_says_how_to_get_it():
    with pytest.raises(VanexportError) as e:
        import_tensorrt()
    assert e.value.problem == "TensorRT is not installed (no 'tensorrt' Python package)"
    assert "pip install 'vanexport[gpu]'" in e.value.hint and "JetPack" in e.value.hint


@pytest.mark.skipif(_has_driver(), reason="an NVIDIA driver is installed here")
def test_no_driver_is_named_after_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # as if the wheel were installed
    with pytest.raises(VanexportError, match=r"no NVIDIA driver \(libcuda is not installed\)") as e:
        require_tensorrt()
    assert "nvidia-smi" in e.value.hint


def test_gpu_name_and_compute_capability_from_the_driver(monkeypatch):
    monkeypatch.setattr(machine, "_load_libcuda", lambda: FakeDriver())
    gpu = cuda_gpu(0)
    assert (gpu.name, gpu.compute_capability, gpu.driver_cuda_version, gpu.cc) == ("NVIDIA A10", "8.6", "12.4", (8, 6))
    assert gpu.integrated is False
    with pytest.raises(VanexportError, match=r"no CUDA device 1 \(1 visible\)"):
        cuda_gpu(1)


def test_an_integrated_gpu_is_told_apart(monkeypatch):
    orin = {"name": "Orin", "cc": "8.7", "integrated": True, "memory": 32 * 2**30}
    monkeypatch.setattr(machine, "_load_libcuda", lambda: FakeDriver([orin]))
    assert cuda_gpu(0).integrated is True and machine.gpus()[0]["integrated"] is True


@pytest.mark.parametrize("text, release", [
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n", "R36.4.3"),
    ("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref, EABI: aarch64\n", "R35.5.0"),
    ("garbage", ""),
])
def test_jetson_linux_release(text, release, tmp_path):
    assert machine.parse_l4t_release(text) == release
    f = tmp_path / "nv_tegra_release"
    f.write_text(text)
    assert machine.host_platform(str(f)).l4t == release
    assert machine.host_platform(str(tmp_path / "absent")).l4t == ""


@pytest.mark.parametrize("code, message", [
    (100, r"no CUDA device \(the NVIDIA driver is installed but sees no GPU\)"),
    (34, r"no NVIDIA driver \(only the CUDA toolkit's stub libcuda was found\)"),
    (999, r"cannot initialise CUDA \(CUDA_ERROR_UNKNOWN\)"),
])
def test_driver_failures_are_named(monkeypatch, code, message):
    monkeypatch.setattr(machine, "_load_libcuda", lambda: FakeDriver(init_result=code))
    with pytest.raises(VanexportError, match=message):
        cuda_gpu()


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
@pytest.mark.parametrize("args", [["trt", "--fp16"], ["trt", "--int8", "--calib", "."], ["validate", "{tmp}/x.plan"]])
def test_tensorrt_commands_fail_fast_in_one_line_and_write_nothing(tmp_path, monkeypatch, args):
    (tmp_path / "x.plan").write_bytes(b"plan")
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    r = CliRunner().invoke(cli, [a.format(tmp=tmp_path) for a in args] + ["--json"])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["error: TensorRT is not installed (no 'tensorrt' Python package): "
                                             + machine.TENSORRT_HINT]
    assert set(tmp_path.rglob("*")) == before  # nothing exported before failing: no engines/ folder either


def test_inspect_a_plan_without_tensorrt_still_reads_its_manifest(tmp_path, monkeypatch, make_manifest):
    from vanexport.formats.engine_manifest import manifest_path, write_manifest

    monkeypatch.setattr(machine, "import_tensorrt", lambda: (_ for _ in ()).throw(
        VanexportError("TensorRT is not installed (no 'tensorrt' Python package)", machine.TENSORRT_HINT)))
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x" * 1000)
    write_manifest(make_manifest(plan), manifest_path(plan))
    r = CliRunner().invoke(cli, ["inspect", str(plan), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["details"]["manifest"]["tensorrt"]["version"] == "10.16.1.11" and d["details"]["hash_ok"] is True
    assert d["details"]["layers"] is None and "no per-layer table: TensorRT is not installed" in d["notes"][0]
    r = CliRunner().invoke(cli, ["inspect", str(plan)])
    assert "FP16 engine, TensorRT 10.16.1.11 (strongly typed" in r.stdout and "max 32x3x224x224" in r.stdout
    plan.write_bytes(b"y" * 1000)
    d = json.loads(CliRunner().invoke(cli, ["inspect", str(plan), "--json"]).stdout)
    assert d["details"]["hash_ok"] is False and "modified or replaced" in d["notes"][0]


@pytest.mark.parametrize("args, message", [
    (["trt", "--opt-level", "9"], "--opt-level 9 is out of range"),
    (["trt", "--weak-typing"], "--weak-typing needs --fp16 or --int8"),
    (["trt", "--max-batch", "0"], "--max-batch 0 is not positive"),
    (["trt", "--dla-core", "0", "--hw-compat", "ampere+"], "--dla-core and --hw-compat exclude each other"),
])
def test_bad_trt_flags_are_user_errors_before_anything_else(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("exc, line", [
    (ModuleNotFoundError("No module named 'torch'", name="torch"), "error: torch is not installed: exporting"),
    (ModuleNotFoundError("No module named 'skimage.data'", name="skimage.data"), "error: scikit-image is not installed"),
    (ModuleNotFoundError("No module named 'polygraphy'", name="polygraphy"), "error: polygraphy is not installed"),
])
def test_a_device_install_names_the_export_extra(exc, line):
    from vanexport.cli.app import one_line

    text, code = one_line(exc)
    assert code == 2 and text.startswith(line) and text.endswith(machine.EXPORT_HINT)


def test_other_import_errors_stay_internal_errors():
    from vanexport.cli.app import one_line

    assert machine.missing_export_package(ModuleNotFoundError("x", name="numpy")) is None
    assert machine.missing_export_package(ValueError("torch")) is None
    assert one_line(ModuleNotFoundError("No module named 'numpy'", name="numpy"))[1] == 1


# The GPU stack check of `vanexport info`: pure logic over facts, tested with facts made up here.
ORT_131_TRT_EP = ("libcublas.so.13", "libdl.so.2", "libnvinfer.so.10", "libnvonnxparser.so.10", "libcudart.so.13",
                  "libcudnn.so.9", "libc.so.6")  # onnxruntime-gpu 1.31.1's TensorRT provider (readelf -d)


@pytest.mark.parametrize("tensorrt, lines", [
    ("11.4.0.106", 1),  # the provider wants libnvinfer.so.10: it cannot load
    ("10.16.1.11", 0),
    ("10.3.0", 0),  # JetPack 6's: same major, same soname
    (None, 0),  # no TensorRT: nothing to fit (the provider is simply unavailable)
])
def test_ort_tensorrt_provider_against_the_installed_tensorrt(tensorrt, lines):
    facts = machine.GpuStackFacts(tensorrt, "1.31.1", ORT_131_TRT_EP)
    problems = machine.gpu_stack_problems(facts)
    assert len(problems) == lines
    if lines:
        assert problems[0].startswith("onnxruntime-gpu 1.31.1's TensorRT provider needs libnvinfer.so.10 (TensorRT "
                                      "10) but TensorRT 11.4.0.106 is installed")
        assert problems[0].endswith(machine.GPU_SET_HINT) and "\n" not in problems[0]


def test_missing_cuda_libraries_are_named_in_one_line():
    facts = machine.GpuStackFacts("10.16.1.11", "1.31.1", ORT_131_TRT_EP, unfound=("libcublas.so.13", "libcudnn.so.9"))
    assert machine.gpu_stack_problems(facts) == [
        "onnxruntime-gpu 1.31.1's CUDA providers cannot load: libcublas.so.13, libcudnn.so.9 not found; "
        + machine.CUDA_LIBS_HINT]


def _readelf_needed(path) -> list[str]:
    """The reference: binutils' readelf."""
    import re
    import subprocess

    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


@pytest.mark.skipif(not __import__("shutil").which("readelf"), reason="no readelf (binutils) to compare with")
def test_elf_needed_reads_what_readelf_reads(tmp_path):
    import _ctypes

    lib = _ctypes.__file__  # a shared library every CPython on Linux has, linking libffi and libc
    assert machine.elf_needed(lib) == _readelf_needed(lib) and machine.elf_needed(lib)
    (tmp_path / "x.so").write_bytes(b"not an ELF file")
    assert machine.elf_needed(tmp_path / "x.so") == []
    (tmp_path / "cut.so").write_bytes(open(lib, "rb").read()[:200])  # a damaged library: nothing, no traceback
    assert machine.elf_needed(tmp_path / "cut.so") == []


@pytest.mark.skipif(not __import__("shutil").which("readelf"), reason="no readelf (binutils) to compare with")
def test_gpu_stack_facts_read_the_provider_libraries(tmp_path, monkeypatch):
    """A stand-in onnxruntime-gpu package: its provider libraries are copies of a real shared library."""
    import _ctypes
    import shutil

    capi = tmp_path / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    (tmp_path / "onnxruntime" / "__init__.py").write_text("")
    shutil.copy(_ctypes.__file__, capi / "libonnxruntime_providers_tensorrt.so")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.setattr(machine, "_findable", lambda name: False)
    facts = machine.gpu_stack_facts({"tensorrt": "11.4.0.106", "onnxruntime-gpu": "1.31.1"})
    assert facts.ort_tensorrt_needs == tuple(_readelf_needed(_ctypes.__file__)) and facts.ort_cuda_needs == ()
    assert facts.unfound == ()  # libffi and libc are not CUDA libraries
    assert machine.gpu_stack_facts({"tensorrt": None, "onnxruntime-gpu": None}) == machine.GpuStackFacts()


def test_info_says_when_tensorrt_and_onnxruntime_gpu_cannot_work_together(monkeypatch):
    versions = {name: None for name in machine.PACKAGES}
    versions.update({"onnxruntime-gpu": "1.31.1", "tensorrt": "11.4.0.106"})
    monkeypatch.setattr(machine, "package_versions", lambda: versions)
    monkeypatch.setattr(machine, "gpu_stack_facts", lambda v: machine.GpuStackFacts(
        v["tensorrt"], v["onnxruntime-gpu"], ORT_131_TRT_EP))
    r = CliRunner().invoke(cli, ["info", "--json"])
    assert r.exit_code == 0, r.output
    assert [p for p in json.loads(r.stdout)["problems"] if "libnvinfer.so.10" in p] == \
        machine.gpu_stack_problems(machine.GpuStackFacts("11.4.0.106", "1.31.1", ORT_131_TRT_EP))
    text = CliRunner().invoke(cli, ["info"]).stdout
    assert sum("TensorRT provider needs libnvinfer.so.10" in line for line in text.splitlines()) == 1


def test_a_cuda_library_in_an_nvidia_wheel_counts_as_found(tmp_path, monkeypatch):
    """onnxruntime-gpu's [cuda,cudnn] extras put the libraries in site-packages/nvidia/<part>/lib, where
    onnxruntime.preload_dlls() loads them from; the dynamic loader alone would not find them."""
    (tmp_path / "nvidia" / "cu13" / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "cu13" / "lib" / "libvanexport_test_cublas.so.13").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert machine._findable("libvanexport_test_cublas.so.13") is True
    assert machine._findable("libvanexport_test_cudnn.so.9") is False
