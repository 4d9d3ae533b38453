"""The `vanexport` command line: a thin click layer over the Python API.

Nothing heavy is imported here at module level, so `vanexport --help` stays instant.
"""
from __future__ import annotations

import json
import os
import sys
import warnings

import click

from . import __version__
from .errors import VanexportError

VARIANT_NAMES = ("b0", "b1", "b2", "b3", "b4", "b5", "b6")


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit code 2 (a traceback only with --debug)."""

    def invoke(self, ctx):
        _route_warnings()
        try:
            return super().invoke(ctx)
        except VanexportError as e:
            if ctx.meta.get("vanexport.debug") or os.environ.get("VANEXPORT_DEBUG", "") not in ("", "0"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted (no partial files were left)", err=True)
            sys.exit(130)


def _set_debug(ctx, param, value):
    if value:
        ctx.meta["vanexport.debug"] = True  # meta is shared by the group's and the command's contexts


def _route_warnings():
    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def debug_option(f):
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="Show tracebacks instead of one-line errors.")(f)


def common(f):
    """--json and --debug on every command."""
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON record on stdout instead of a report.")(
        debug_option(f))


def _progress(msg: str) -> None:
    """Long work reports each step on stderr (stdout stays clean for --json)."""
    click.echo(f"• {msg}", err=True)


def _emit(record: dict, as_json: bool, render) -> None:
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
    else:
        render(record)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vanexport")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
              help="Show tracebacks instead of one-line errors.")
def cli():
    """Export Visual Attention Network (VAN) classifiers to ONNX and TensorRT, and check them against PyTorch."""


@cli.command()
@click.option("--variant", type=click.Choice(VARIANT_NAMES, case_sensitive=False), default=None,
              help="VAN variant [default: b0, or guessed from --weights].")
@click.option("--weights", metavar="PATH|URL|official", help="Checkpoint (any layout), URL, or 'official'. "
              "Without it the weights are random (seed --seed).")
@click.option("--num-classes", type=int, help="Classifier size [default: from the checkpoint, else 1000].")
@click.option("--img-size", type=int, default=224, show_default=True, help="Input height = width (multiple of 32).")
@click.option("--batch", type=int, help="Static batch size (default: dynamic batch).")
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch axis (the default unless --batch is given).")
@click.option("--dynamic-hw", is_flag=True, help="Dynamic height and width (multiples of 32).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17-20).")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx exporter.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--no-validate", is_flag=True, help="Skip the check against PyTorch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights and check inputs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file [default: engines/van_<variant>_<size>.onnx].")
@common
def onnx(variant, weights, num_classes, img_size, batch, dynamic_batch, dynamic_hw, opset, exporter, no_simplify,
         no_validate, seed, output, as_json):
    """Export a VAN to ONNX, simplify it and validate it against PyTorch.

    \b
    Example:
      vanexport onnx --variant b0 --weights official -o engines/van_b0.onnx
    """
    if batch is not None and dynamic_batch:
        raise VanexportError("--batch and --dynamic-batch contradict each other", "pass only one of them")
    from .export.onnx import export_onnx
    from .report import render_export

    result = export_onnx(variant, weights, num_classes=num_classes, img_size=img_size, batch=batch,
                         dynamic_hw=dynamic_hw, opset=opset, simplify=not no_simplify, output=output,
                         validate=not no_validate, exporter=exporter, seed=seed, progress=_progress)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    _emit(result.to_dict(), as_json, render_export)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--weights", metavar="PATH|URL|official", help="Weights the model was exported from "
              "[default: rebuilt from its metadata].")
@click.option("--images", type=click.Path(file_okay=False), help="Folder of images to compare on "
              "[default: random batches and scikit-image's sample photos].")
@click.option("--atol", type=float, help="Absolute tolerance on logits [FP32 default: 1e-4].")
@click.option("--rtol", type=float, help="Relative tolerance (an output passes on atol OR rtol) [default: 0, off].")
@common
def validate(model, weights, images, atol, rtol, as_json):
    """Compare an exported MODEL against its PyTorch reference (variant and preprocessing read from its metadata).

    Exit code 1 when it fails the tolerance.
    """
    from .report import render_validation
    from .validate import validate as run_validate

    report = run_validate(model, weights=weights, images=images, atol=atol, rtol=rtol)
    _emit(report.to_dict(), as_json, render_validation)
    if not report.passed:
        sys.exit(1)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise VanexportError(f"{flag} '{text}' is not a comma-separated list of integers", f"pass e.g. {flag} 1,8") from None


@cli.command()
@click.option("--variant", "variants", multiple=True, metavar="b0[,b1..]",
              help="VAN variant(s), repeated or comma-separated [default: b0, or guessed from --weights].")
@click.option("--weights", metavar="PATH|URL|official", help="Checkpoint (any layout), URL, or 'official' "
              "[default: random weights, seed --seed: real speed, meaningless top-1].")
@click.option("--num-classes", type=int, help="Classifier size [default: from the checkpoint, else 1000].")
@click.option("--backends", metavar="torch,ort,trt", help="Backends to time [default: all].")
@click.option("--precision", "precisions", metavar="fp32,fp16,int8", help="Precisions to time [default: all].")
@click.option("--batch", "batches", default="1", show_default=True, metavar="1,8,32", help="Batch sizes.")
@click.option("--img-size", type=int, default=224, show_default=True, help="Input height = width (multiple of 32).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed calls before timing each row.")
@click.option("--iters", type=int, help="Timed calls per row (instead of --seconds).")
@click.option("--seconds", type=float, help="Time each row for this long, at least 10 calls [default: 2].")
@click.option("--threads", type=int, help="CPU threads for PyTorch and ONNX Runtime [default: each library's own].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Only rows on this device [default: both].")
@click.option("--calib", type=click.Path(), help="Calibration images (folder) for the INT8 rows.")
@click.option("--num-calib", type=int, default=256, show_default=True, help="Calibration images to use.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights and the input pool.")
@click.option("--json", "json_path", is_flag=False, flag_value="-", metavar="[PATH]",
              help="Write the JSON record to PATH, or to stdout (instead of the table) when no PATH is given.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one CSV line per row to PATH.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a latency/throughput plot (PNG).")
@debug_option
def bench(variants, weights, num_classes, backends, precisions, batches, img_size, warmup, iters, seconds, threads,
          device, calib, num_calib, seed, json_path, csv_path, plot_path):
    """Latency, throughput, memory and fidelity of every backend and precision, side by side in one run.

    Each row is timed in a fresh process after a warm-up, on rotating inputs, and its logits are compared with
    PyTorch FP32 on the same inputs. Rows this machine cannot run are listed with the reason.
    Exit code 1 when a row failed or failed its fidelity check.

    \b
    Example:
      vanexport bench --variant b0,b1 --batch 1,8 --backends torch,ort --csv bench.csv --plot bench.png
    """
    from .bench.output import check_plot_path, write_csv, write_json, write_plot
    from .bench.run import DEFAULT_SECONDS, benchmark
    from .files import check_output_path
    from .report import render_bench

    if iters is not None and seconds is not None:
        raise VanexportError("--iters and --seconds contradict each other", "pass only one of them")
    for path in (p for p in (json_path, csv_path, plot_path) if p and p != "-"):
        check_output_path(path)
    if plot_path:
        check_plot_path(plot_path)
    names = [v for arg in variants for v in arg.split(",") if v.strip()]
    with _progress_bar() as on_row:
        report = benchmark(names, weights, backends=backends, precisions=precisions,
                           batches=_int_list(batches, "--batch"), img_size=img_size, warmup=warmup, iters=iters,
                           seconds=seconds if seconds is not None else DEFAULT_SECONDS, threads=threads,
                           device=device, calib=calib, num_calib=num_calib, num_classes=num_classes, seed=seed,
                           progress=_progress, on_row=on_row)
    record = report.to_dict()
    for path, write in ((json_path, write_json), (csv_path, write_csv), (plot_path, write_plot)):
        if path and path != "-":
            write(record, path)
            click.echo(f"• wrote {path}", err=True)
    _emit(record, json_path == "-", render_bench)
    if report.failed:
        sys.exit(1)


def _progress_bar():
    """A progress bar on stderr over the benchmark's rows; yields the `on_row` callback."""
    import contextlib

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def bar():
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True, refresh_per_second=4) as p:
            task = p.add_task("benchmark", total=None)

            def on_row(done: int, total: int, label: str):
                p.update(task, completed=done, total=total, description=label)
            yield on_row
    return bar()


@cli.command()
@common
def info(as_json):
    """Versions, ONNX Runtime providers, GPUs, and what each command is missing."""
    from .info import environment_info
    from .report import render_info

    _emit(environment_info(), as_json, render_info)


def main():
    cli(prog_name="vanexport")
