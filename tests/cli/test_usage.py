"""click's own usage errors, the dynamo/opset refusal and warnings with --json: the project's one-line form on
stderr (`error: what: what to do`, exit 2), before any work."""
import json
import re

import pytest
from click.testing import CliRunner

from vanexport.cli import cli

ONE_LINE = re.compile(r"error: [^\n]+: see 'vanexport( [a-z0-9]+)? --help'")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("args, what", [
    (["quantize", "{tmp}/m.onnx", "--images", "{tmp}/cat.jpg"], "Directory '{tmp}/cat.jpg' is a file"),
    (["predict", "{tmp}/cat.jpg", "--model", "{tmp}"], "File '{tmp}' is a directory"),
    (["onnx", "extra"], "Got unexpected extra argument (extra)"),
    (["unpack", "{tmp}/b.tar.gz"], "Missing option '-o' / '--output'"),
    (["onnx", "--opset", "x"], "'x' is not a valid integer"),
    (["nosuch"], "No such command 'nosuch'"),
    (["--bogus", "info"], "No such option '--bogus'"),  # the group's own flags, parsed before any command
])
def test_click_usage_errors_are_one_line(tmp_path, args, what):
    (tmp_path / "cat.jpg").write_bytes(b"")
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2
    assert ONE_LINE.fullmatch(r.stderr.strip()), r.stderr
    assert what.format(tmp=tmp_path) in r.stderr and "Usage:" not in r.output


def test_usage_error_names_the_command_to_ask(tmp_path):
    assert r"see 'vanexport onnx --help'" in run("onnx", "extra").stderr
    assert r"see 'vanexport --help'" in run("nosuch").stderr


def test_dynamo_below_opset_18_is_refused_before_any_work(monkeypatch):
    import vanexport.model.factory as factory

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(factory, "load_model", no_work)
    r = run("onnx", "--exporter", "dynamo", "--json")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["error: the dynamo exporter writes opset 18 or newer, not 17: pass "
                                             "--opset 18 with --exporter dynamo, or use --exporter torchscript"]
    r = run("onnx", "--exporter", "dynamo", "--opset", "18")  # allowed: it goes on to load the model
    assert r.exit_code == 1 and "the model was loaded" in r.stderr


def test_bench_json_warnings_also_go_to_stderr(monkeypatch):
    import vanexport.bench.run as bench_run

    busy = "the machine was busy when the benchmark started (load average 9.00 on 2 cores): re-run"
    monkeypatch.setattr(bench_run, "benchmark", lambda *a, **k: bench_run.BenchReport({}, {}, [], [busy]))
    r = run("bench", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == [busy]
    assert f"warning: {busy}" in r.stderr.splitlines()
