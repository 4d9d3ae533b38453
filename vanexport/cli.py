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


def common(f):
    """--json and --debug on every command."""
    f = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                     help="Show tracebacks instead of one-line errors.")(f)
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON record on stdout instead of a report.")(f)


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
@click.option("--atol", type=float, help="Absolute tolerance on logits [FP32 default: 1e-4; FP16/INT8 are judged "
              "by agreement unless --atol is given].")
@click.option("--rtol", type=float, help="Relative tolerance (an output passes on atol OR rtol) [default: 0, off].")
@common
def validate(model, weights, images, atol, rtol, as_json):
    """Compare an exported MODEL against its PyTorch reference (variant and preprocessing read from its metadata).

    The verdict fits the file's precision: FP32 by max abs error; FP16 by top-1 agreement and cosine; INT8 by
    top-1 agreement and accuracy drop (class subfolders in --images give labels). Exit code 1 when it fails.
    """
    from .report import render_validation
    from .validate import validate as run_validate

    report = run_validate(model, weights=weights, images=images, atol=atol, rtol=rtol)
    for n in report.notes:
        click.echo(f"note: {n}", err=True)
    _emit(report.to_dict(), as_json, render_validation)
    if not report.passed:
        sys.exit(1)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--keep-fp32", multiple=True, metavar="OP_TYPE|REGEX",
              help="Op type (exact) or node-name regex to keep in FP32; repeat the flag for more. "
              "LayerNormalization is always kept unless --fp16-layernorm.")
@click.option("--fp16-layernorm", is_flag=True, help="Convert LayerNormalization to FP16 too (FP16 LayerNorm can overflow).")
@click.option("--fp16-io", is_flag=True, help="FP16 model input/output [default: FP32, so callers need not change].")
@click.option("--images", type=click.Path(file_okay=False),
              help="Held-out images to validate on; nothing is written if the FP16 thresholds fail.")
@click.option("--weights", metavar="PATH|URL|official", help="Weights of the PyTorch reference for --images "
              "[default: recorded at export].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file [default: MODEL_fp16.onnx beside MODEL].")
@common
def fp16(model, keep_fp32, fp16_layernorm, fp16_io, images, weights, output, as_json):
    """Convert an FP32 MODEL to a mixed FP16 graph for TensorRT strongly typed builds.

    \b
    Example:
      vanexport fp16 engines/van_b0_224.onnx --images heldout/
    """
    from .export.precision import convert_fp16
    from .report import render_precision

    result = convert_fp16(model, output, keep_fp32=keep_fp32, keep_io_types=not fp16_io, layernorm_fp16=fp16_layernorm,
                          images=images, weights=weights, progress=_progress)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    _emit(result.to_dict(), as_json, render_precision)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--int8", is_flag=True, default=True, help="INT8 Q/DQ (the only quantization mode; FP16 is `vanexport fp16`).")
@click.option("--calib", required=True, type=click.Path(), metavar="DIR|NPZ",
              help="Calibration images (recursive, class subfolders allowed) or an .npz of preprocessed batches.")
@click.option("--num-calib", type=int, default=256, show_default=True, help="Calibration inputs to use.")
@click.option("--method", type=click.Choice(["entropy", "max", "percentile"]), default="entropy", show_default=True,
              help="How activation ranges are chosen from the calibration data.")
@click.option("--exclude", multiple=True, metavar="REGEX|OP_TYPE",
              help="Node-name regex (or op type) to leave unquantized; repeat the flag for more.")
@click.option("--images", type=click.Path(file_okay=False),
              help="Held-out images to validate on; nothing is written if the INT8 thresholds fail.")
@click.option("--weights", metavar="PATH|URL|official", help="Weights of the PyTorch reference for --images "
              "[default: recorded at export].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file [default: MODEL_int8.onnx beside MODEL].")
@common
def quantize(model, int8, calib, num_calib, method, exclude, images, weights, output, as_json):
    """Quantize an FP32 MODEL to a Q/DQ INT8 graph for TensorRT, calibrated on real images.

    Calibration ranges are cached beside the output and reused when the model and images are unchanged.

    \b
    Example:
      vanexport quantize engines/van_b0_224.onnx --int8 --calib calib/ --images heldout/
    """
    from .export.precision import quantize_int8
    from .report import render_precision

    result = quantize_int8(model, calib, output, num_calib=num_calib, method=method, exclude=exclude, images=images,
                           weights=weights, progress=_progress)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    _emit(result.to_dict(), as_json, render_precision)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calib", type=click.Path(), metavar="DIR|NPZ", help="Calibration images or .npz (needed for INT8).")
@click.option("--images", type=click.Path(file_okay=False),
              help="Held-out images to measure on [default: the --calib folder, which flatters INT8].")
@click.option("--fp16", "use_fp16", is_flag=True, help="Analyse FP16 instead of INT8 (recommends --keep-fp32).")
@click.option("--mode", type=click.Choice(["only", "leave-out"]), default="only", show_default=True,
              help="Convert one group at a time, or everything but one group at a time.")
@click.option("--depth", type=int, default=2, show_default=True,
              help="Group size: 1 = one group per block (/block1.0), 2 = attn/mlp of each block (/block1.0/attn).")
@click.option("--num-calib", type=int, default=256, show_default=True, help="Calibration inputs to use.")
@click.option("--method", type=click.Choice(["entropy", "max", "percentile"]), default="entropy", show_default=True,
              help="INT8 calibration method.")
@click.option("--num-images", type=int, help="Measure on this many of the images (a seeded pick) [default: all].")
@common
def sensitivity(model, calib, images, use_fp16, mode, depth, num_calib, method, num_images, as_json):
    """Find which layers lose accuracy in INT8 (or FP16), and the --exclude (--keep-fp32) set that fixes it.

    Exit code 1 when no set of groups brings the model within the threshold.

    \b
    Example:
      vanexport sensitivity engines/van_b0_224.onnx --calib calib/ --images heldout/
    """
    from .report import render_sensitivity
    from .analysis import sensitivity as run_sensitivity

    report = run_sensitivity(model, calib, images=images, precision="fp16" if use_fp16 else "int8", mode=mode,
                             depth=depth, num_calib=num_calib, method=method, num_images=num_images,
                             progress=_progress)
    for n in report.notes:
        click.echo(f"note: {n}", err=True)
    _emit(report.to_dict(), as_json, render_sensitivity)
    if not report.passed:
        sys.exit(1)


@cli.command()
@common
def info(as_json):
    """Versions, ONNX Runtime providers, GPUs, and what each command is missing."""
    from .info import environment_info
    from .report import render_info

    _emit(environment_info(), as_json, render_info)


def main():
    cli(prog_name="vanexport")
