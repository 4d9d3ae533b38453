"""One vocabulary for flags across commands: the same --calib everywhere (what it takes, and the one rule when no
INT8 file is made), one spelling of batch, the old spellings kept as hidden aliases."""
import click
import pytest
from click.testing import CliRunner

from vanexport.cli import cli

CALIB_COMMANDS = ("quantize", "sensitivity", "trt", "bench", "bundle")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def options(command: str) -> dict[str, click.Option]:
    return {name: p for p in cli.commands[command].params if isinstance(p, click.Option) for name in p.opts}


@pytest.mark.parametrize("command", CALIB_COMMANDS)
def test_calib_takes_the_same_thing_everywhere(command):
    calib = options(command)["--calib"]
    assert calib.metavar == "DIR|NPZ" and "--calib DIR|NPZ" in run(command, "--help").stdout
    assert calib.type.file_okay and calib.type.dir_okay  # a folder of images or an .npz, as --calib says


@pytest.mark.parametrize("args, how", [
    (["quantize", "{tmp}/m.onnx", "--precision", "fp16", "--calib", "{tmp}"], "pass --precision int8"),
    (["sensitivity", "{tmp}/m.onnx", "--precision", "fp16", "--calib", "{tmp}"],
     "pass the images to measure FP16 on with --images"),
    (["bundle", "--precision", "fp32,fp16", "--calib", "{tmp}"], "add int8 to --precision"),
    (["trt", "--precision", "fp16", "--calib", "{tmp}"], "pass --precision int8"),
    (["bench", "--precision", "fp32,fp16", "--calib", "{tmp}"], "add int8 to --precision"),
])
def test_calib_without_int8_is_one_error_everywhere(tmp_path, args, how):
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines() == [f"error: --calib only applies to INT8: drop it, or {how}"]
    assert list(tmp_path.iterdir()) == []


def test_num_calib_without_int8_is_the_same_rule(tmp_path):
    r = run("bundle", "--calib", tmp_path, "--num-calib", "8")
    assert r.exit_code == 2 and "--calib and --num-calib only apply to INT8: drop them" in r.stderr


def test_batch_is_spelled_batch_and_the_old_spelling_is_a_hidden_alias(monkeypatch, tmp_path):
    import vanexport.ship.deepstream as deepstream

    seen = []

    def stand_in(bundle, output, **kwargs):  # what the command hands the library, not a config
        seen.append(kwargs["batch_size"])
        raise SystemExit(0)

    monkeypatch.setattr(deepstream, "deepstream_config", stand_in)
    bundle = tmp_path / "b.tar.gz"
    for flags, expected in (([], 1), (["--batch", "4"], 4), (["--batch-size", "3"], 3), (["--batch", "2",
                                                                                         "--batch-size", "2"], 2)):
        run("deepstream", bundle, *flags)
        assert seen.pop() == expected
    r = run("deepstream", bundle, "--batch", "2", "--batch-size", "3")
    assert r.exit_code == 2 and "--batch 2 and --batch-size 3 contradict each other: pass only --batch" in r.stderr
    assert options("deepstream")["--batch-size"].hidden and "--batch-size" not in run("deepstream", "--help").stdout


def test_no_command_shows_another_spelling_of_batch():
    """Shown batch flags: --batch (a size or a list), and the profile / config bounds whose meaning differs."""
    shown = {name for command in cli.commands for name, p in options(command).items()
             if "batch" in name and not p.hidden}
    assert shown == {"--batch", "--dynamic-batch", "--min-batch", "--opt-batch", "--max-batch"}
