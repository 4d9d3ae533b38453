"""Running out of memory is one line and exit code 2 (what the user can change), whether Python says so
(MemoryError) or a library does in a RuntimeError; any other RuntimeError stays an internal error (exit 1)."""
import pytest
from click.testing import CliRunner

from vanexport.cli import cli
from vanexport.cli.app import one_line

HINT = "try a smaller --img-size or --batch, or close other programs"


@pytest.mark.parametrize("exc, line, code", [
    (MemoryError(), f"error: out of memory: {HINT}", 2),
    (MemoryError("Unable to allocate 12.0 GiB for an array with shape (3, 1000000000) and data type float32\n"
                 "second line"),
     "error: out of memory (Unable to allocate 12.0 GiB for an array with shape (3, 1000000000) and data type "
     f"float32): {HINT}", 2),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     f"error: out of memory (CUDA out of memory. Tried to allocate 2.00 GiB): {HINT}", 2),
    (RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : bad allocation"),
     f"error: out of memory ([ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : bad allocation): {HINT}", 2),
    (RuntimeError("shape mismatch"),
     "internal error: RuntimeError: shape mismatch (rerun with --debug for the traceback)", 1),
])
def test_out_of_memory_is_a_user_error(exc, line, code):
    assert one_line(exc) == (line, code)


def test_a_command_that_runs_out_of_memory_says_so_in_one_line(tmp_path, monkeypatch):
    from vanexport import inspection

    def exhaust(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.00 GiB")

    monkeypatch.setattr(inspection, "inspect_file", exhaust)
    (tmp_path / "m.onnx").write_bytes(b"x")
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: out of memory (Unable to allocate 3.00 GiB): {HINT}"]
