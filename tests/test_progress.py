"""Progress of long work: count lines when stderr is not a terminal, a bar when it is, plain callbacks for the API."""
import io

import pytest
from click.testing import CliRunner

from vanexport.cli import cli
from vanexport.progress import ConsoleProgress, Progress, as_progress, counts


def test_plain_lines_with_counts_and_time_left_when_not_a_terminal(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("vanexport.progress.time.monotonic", lambda: clock[0])
    out = io.StringIO()
    progress = ConsoleProgress(out, terminal=False, interval=5)
    progress.step("loading")
    with progress.task("validating", total=400, unit="images") as task:
        for _ in range(10):  # 40 images a second: a line every 5 s, never more often
            clock[0] += 1
            task.advance(40)
    lines = out.getvalue().splitlines()
    assert lines == ["• loading", "• validating",
                     "  validating: 200/400 images (50%), 5 s elapsed, about 5 s left",
                     "  validating: 400/400 images (100%), 10 s elapsed",
                     "  validating: 400/400 images in 10 s"]


def test_a_quick_task_prints_only_its_description():
    out = io.StringIO()
    with ConsoleProgress(out, terminal=False, interval=60).task("reading 3 images", 3, "images") as task:
        task.advance(3)
    assert out.getvalue() == "• reading 3 images\n"


def test_a_failed_task_claims_no_completion():
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with ConsoleProgress(out, terminal=False, interval=0).task("calibrating", 10, "images") as task:
            task.advance(4)
            raise RuntimeError("boom")
    assert " in " not in out.getvalue().splitlines()[-1] and "4/10 images" in out.getvalue()


def test_a_terminal_gets_a_bar_and_the_stream_is_left_clean():
    out = io.StringIO()
    progress = ConsoleProgress(out, terminal=True, interval=0)
    with progress.task("benchmark", 2, "rows") as outer:
        with progress.task("calibrating", 8, "images") as inner:  # nested tasks share one live display
            inner.advance(8)
        outer.advance(2)
    assert progress._bars is None and "• benchmark" in out.getvalue() and "• calibrating" in out.getvalue()


def test_counts_without_a_total_and_time_formats(monkeypatch):
    task = Progress().task("reading", None, "files")
    task.done = 7
    assert counts(task).startswith("7 files, ")
    from vanexport.progress import duration

    assert (duration(4.4), duration(61), duration(3725)) == ("4 s", "1 min 01 s", "1 h 02 min")


def test_plain_callbacks_still_work_for_the_api():
    seen = []
    p = as_progress(seen.append)
    p.step("a step")
    with p.task("a task", 3) as task:
        task.advance(3)
    assert seen == ["a step", "a task"]
    assert isinstance(as_progress(None), Progress) and as_progress(p) is p


def test_validate_shows_counts_in_logs(b0_onnx_64, monkeypatch):
    """A command whose stderr is a log (not a terminal) says how far it is, with counts."""
    monkeypatch.setenv("VANEXPORT_PROGRESS_SECONDS", "0")
    r = CliRunner().invoke(cli, ["validate", str(b0_onnx_64)])
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert "• checking FP32 against PyTorch FP32 on random batches and sample photos (ONNX Runtime CPU)" in lines
    counted = [line for line in lines if "/16 inputs" in line]
    assert counted[0].startswith("  checking FP32") and "1/16 inputs" in counted[0]
    assert counted[-1].endswith("s") and "16/16 inputs in" in counted[-1]


def test_unpack_counts_the_bytes_it_checks(b0_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("VANEXPORT_PROGRESS_SECONDS", "0")
    r = CliRunner().invoke(cli, ["unpack", str(b0_bundle[0]), "-o", str(tmp_path / "u")])
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert f"• checking and unpacking {b0_bundle[0].name}" in lines
    total = sum(p.stat().st_size for p in (tmp_path / "u").rglob("*") if p.is_file())
    assert lines[-1].startswith(f"  checking and unpacking {b0_bundle[0].name}: {total / 1e6:.0f}/{total / 1e6:.0f} MB in")
