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
