"""The click app: a thin layer over the Python API. Heavy modules are imported inside each command."""
from __future__ import annotations

import errno
import functools
import json
import os
import re
import signal
import sys
import threading
import warnings

import click

from .. import __version__
from ..errors import VanexportError
from ..formats.names import PRECISIONS, RUNTIME_PRECISIONS
from ..model.tasks import TASKS
from ..progress import ConsoleProgress, printable

VARIANT_NAMES = ("b0", "b1", "b2", "b3", "b4", "b5", "b6")
# `--help` lists the commands in the order of the journey: make the files, check and measure them, ship, run.
JOURNEY = ("onnx", "quantize", "sensitivity", "trt", "validate", "inspect", "bench", "bundle", "unpack", "predict",
           "triton", "deepstream", "info")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was, so that every `finally` (temp files, work folders) runs as on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


_DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
              errno.EFBIG: "file too large for this file system (or the process's file size limit)"}
# The file system refusing a path (permissions, a read-only mount, a file where a folder should be, a name too
# long): the machine's state, not our bug, wherever it surfaces.
_PATH_REFUSED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 errno.EROFS: "read-only file system", errno.ENOTDIR: "a file stands where a folder should be",
                 errno.EISDIR: "a folder stands where a file should be", errno.ENAMETOOLONG: "file name too long",
                 errno.ELOOP: "too many levels of symbolic links"}
_OUT_OF_MEMORY = ("not enough memory", "out of memory", "bad allocation", "bad_alloc", "cannot allocate memory")


def one_line(e: BaseException) -> tuple[str, int]:
    """The line a user sees for an exception, and the exit code: 2 for what the user or the machine can fix,
    1 for our own bugs (with the way to the traceback)."""
    if isinstance(e, VanexportError):
        return f"error: {e}", 2
    from ..machine import missing_export_package

    if (missing := missing_export_package(e)) is not None:  # a device install running a workstation command
        return f"error: {missing}", 2
    if isinstance(e, OSError) and e.errno in _DISK_FULL:
        where = f" writing '{e.filename}'" if e.filename else ""
        return f"error: {_DISK_FULL[e.errno]}{where}: free some space, or write elsewhere (-o, TMPDIR)", 2
    if isinstance(e, OSError) and e.errno in _PATH_REFUSED:
        where = f" at {str(e.filename)[:200]!r}" if e.filename else ""  # repr: a line break stays one line
        return (f"error: {_PATH_REFUSED[e.errno]}{where}: check that path (its permissions, and that its folders are "
                "folders), or use another (-o, VANEXPORT_CACHE, TMPDIR)"), 2
    text = str(e).strip()
    first = (text.splitlines() or [""])[0][:300]
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(k in text.lower() for k in _OUT_OF_MEMORY)):
        return ("error: out of memory" + (f" ({first})" if first else "")
                + ": try a smaller --img-size or --batch, or close other programs"), 2
    return f"internal error: {type(e).__name__}: {first} (rerun with --debug for the traceback)", 1


def usage_error_exit(e: click.UsageError):
    """click's own usage errors (a bad flag, a missing option, a file where a folder belongs) in the project's
    one-line form `error: what: what to do`, exit code 2."""
    command = f" {e.ctx.command_path.partition(' ')[2]}" if e.ctx is not None and e.ctx.parent is not None else ""
    what = " ".join(e.format_message().split()).rstrip(".")
    click.echo(printable(f"error: {what}: see 'vanexport{command} --help'"), err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns every failure into one line on stderr: exit code 2 for user and machine problems, 1 for internal
    errors (a traceback only with --debug); SIGTERM and Ctrl-C clean up and say so. Lists commands in JOURNEY
    order."""

    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        return [n for n in JOURNEY if n in names] + [n for n in names if n not in JOURNEY]

    def parse_args(self, ctx, args):
        try:  # the group's own flags (`vanexport --bogus`): parsed before invoke
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            usage_error_exit(e)

    def invoke(self, ctx):
        _route_warnings()
        debug = ctx.meta.get("vanexport.debug") or os.environ.get("VANEXPORT_DEBUG", "") not in ("", "0")
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a command's bad flag or value
            usage_error_exit(e)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own: --help, --version
        except KeyboardInterrupt as e:
            what = "terminated" if isinstance(e, Terminated) else "interrupted"
            click.echo(f"{what} (no partial files were left)", err=True)
            sys.exit(143 if isinstance(e, Terminated) else 130)
        except Exception as e:
            if debug or ctx.meta.get("vanexport.debug"):
                raise
            line, code = one_line(e)
            click.echo(printable(line), err=True)  # messages quote file names, labels, flags: shown, not obeyed
            sys.exit(code)
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)


def _set_debug(ctx, param, value):
    if value:
        ctx.meta["vanexport.debug"] = True  # meta is shared by the group's and the command's contexts


def _route_warnings():
    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(printable(f"warning: {message}"), err=True)

    warnings.showwarning = show


def debug_option(f):
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="Show tracebacks instead of one-line errors.")(f)


def common(f):
    """--json and --debug on every command."""
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON record on stdout instead of a report.")(
        debug_option(f))


def pin_weights(weights: str | None, sha256: str | None) -> str | None:
    """--weights X --sha256 HEX -> 'X#sha256=HEX' (the form the model loader checks)."""
    if sha256 is None:
        return weights
    if not re.fullmatch(r"[0-9a-fA-F]{8,64}", sha256):
        raise VanexportError(f"--sha256 {sha256!r} is not a sha256 digest", "give 8 to 64 hex digits")
    if weights is None:
        raise VanexportError("--sha256 pins --weights, but no --weights was given", "pass --weights PATH|URL|official")
    return f"{weights}#sha256={sha256.lower()}"


def weights_options(help_text: str):
    """--weights and --sha256 (a pin on the checkpoint file), handed to the command as one `weights` spec."""
    def decorate(f):
        @functools.wraps(f)
        def command(*args, weights=None, sha256=None, **kwargs):
            return f(*args, weights=pin_weights(weights, sha256), **kwargs)

        command = click.option("--sha256", metavar="HEX", help="Pin the checkpoint file: its sha256 (or its first "
                               "8+ hex digits) must match, or nothing is loaded.")(command)
        return click.option("--weights", metavar="PATH|URL|official", help=help_text)(command)
    return decorate


def _progress() -> ConsoleProgress:
    """Long work reports its steps and counts on stderr (stdout stays clean for --json): bars on a terminal,
    a plain line every few seconds in logs ($VANEXPORT_PROGRESS_SECONDS)."""
    return ConsoleProgress()


def precision_option(choices: tuple[str, ...], default: str | None, help_text: str):
    """The one way every command is told a precision: `--precision X`. The flags `--fp32`, `--fp16`, `--int8`
    (what `vanexport trt --fp16` and trtexec users type) are kept as hidden shorthands for it."""
    def decorate(f):
        @functools.wraps(f)
        def command(*args, precision=None, precision_flag=None, **kwargs):
            if precision and precision_flag and precision != precision_flag:
                raise VanexportError(f"--precision {precision} and --{precision_flag} contradict each other",
                                     "pass only --precision")
            return f(*args, precision=precision or precision_flag or default, **kwargs)

        for p in reversed(choices):
            command = click.option(f"--{p}", "precision_flag", flag_value=p, hidden=True)(command)
        shown = f"{help_text} [default: {default}]" if default else help_text
        return click.option("--precision", type=click.Choice(choices), default=None, help=shown)(command)
    return decorate


CALIB_METAVAR = "DIR|NPZ"  # every --calib takes a folder of images or an .npz of preprocessed batches


def calib_only_for_int8(calib, num_calib, int8: bool, how: str) -> None:
    """The one rule for --calib / --num-calib where no INT8 file is made: an error, never silently ignored."""
    given = [flag for flag, value in (("--calib", calib), ("--num-calib", num_calib)) if value is not None]
    if given and not int8:
        them = len(given) > 1
        raise VanexportError(f"{' and '.join(given)} only apply to INT8" if them else f"{given[0]} only applies to INT8",
                             f"drop {'them' if them else 'it'}, or {how}")


def renamed_option(old: str, new: str, dest: str, default):
    """`old`, a flag's former spelling, kept working as a hidden alias of `new` (stored in `dest`); the new flag's
    option must have default None: `default` applies when neither is given."""
    old_dest = "renamed_" + dest

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            value, old_value = kwargs.pop(dest), kwargs.pop(old_dest)
            if value is not None and old_value is not None and value != old_value:
                raise VanexportError(f"{new} {value} and {old} {old_value} contradict each other", f"pass only {new}")
            kwargs[dest] = next((v for v in (value, old_value) if v is not None), default)
            return f(*args, **kwargs)

        return click.option(old, old_dest, hidden=True, type=int)(command)
    return decorate


def _finish(result, as_json: bool, render, failed: bool = False) -> None:
    """Warnings and notes on stderr, the record (or its report) on stdout; exit 1 when the verdict failed."""
    for w in getattr(result, "warnings", None) or []:
        click.echo(printable(f"warning: {w}"), err=True)
    for n in getattr(result, "notes", None) or []:
        click.echo(printable(f"note: {n}"), err=True)
    _emit(result.to_dict(), as_json, render)
    if failed:
        sys.exit(1)


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
@weights_options("Checkpoint (any layout), URL, or 'official'. "
              "Without it the weights are random (seed --seed).")
@click.option("--num-classes", type=int, help="Classifier size [default: from the checkpoint, else 1000].")
@click.option("--task", type=click.Choice(TASKS), default=None, help="What to export [default: what the "
              "checkpoint holds (classifier, Semantic FPN, UperNet); a classifier without --weights].")
@click.option("--img-size", type=int, default=224, show_default=True, help="Input height = width (multiple of 32).")
@click.option("--batch", type=int, help="Static batch size (default: dynamic batch).")
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch axis (the default unless --batch is given).")
@click.option("--dynamic-hw", is_flag=True, help="Dynamic height and width (multiples of 32).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17-20).")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx exporter.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--fold", is_flag=True, help="CPU deploy form: BatchNorms and layer scales folded into the "
              "convolutions (FP32 serving; not for FP16/INT8/TensorRT).")
@click.option("--no-validate", is_flag=True, help="Skip the check against PyTorch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights and check inputs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file [default: engines/van_<variant>_<size>.onnx].")
@common
def onnx(variant, weights, num_classes, task, img_size, batch, dynamic_batch, dynamic_hw, opset, exporter,
         no_simplify, fold, no_validate, seed, output, as_json):
    """Export a VAN to ONNX, simplify it and validate it against PyTorch.

    \b
    Example:
      vanexport onnx --variant b0 --weights official -o engines/van_b0.onnx
    """
    if batch is not None and dynamic_batch:
        raise VanexportError("--batch and --dynamic-batch contradict each other", "pass only one of them")
    from ..export.onnx import export_onnx
    from .render import render_export

    result = export_onnx(variant, weights, num_classes=num_classes, img_size=img_size, batch=batch,
                         dynamic_hw=dynamic_hw, opset=opset, simplify=not no_simplify, output=output,
                         validate=not no_validate, exporter=exporter, seed=seed, fold=fold, task=task,
                         progress=_progress())
    _finish(result, as_json, render_export)


@cli.command("trt")
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@click.option("--variant", type=click.Choice(VARIANT_NAMES, case_sensitive=False), default=None,
              help="Without MODEL: VAN variant to export [default: b0, or guessed from --weights].")
@weights_options("Without MODEL: checkpoint to export (random weights "
              "without it). With MODEL: the weights it was exported from, for validation.")
@precision_option(("fp32", "fp16", "int8"), None, "Engine precision; FP16 and INT8 are built from the FP16 / Q/DQ "
                  "INT8 ONNX made first (INT8 needs --calib) [default: the ONNX file's own].")
@click.option("--calib", type=click.Path(), metavar=CALIB_METAVAR, help="Calibration images (folder) or .npz for "
              "--precision int8.")
@click.option("--num-calib", type=int, help="Calibration images to use [default: all, up to 256].")
@click.option("--min-batch", type=int, help="Smallest batch the engine takes [default: 1].")
@click.option("--opt-batch", type=int, help="Batch TensorRT tunes for [default: 8].")
@click.option("--max-batch", type=int, help="Largest batch the engine takes [default: 32].")
@click.option("--img-size", type=int, help="Height = width TensorRT tunes for [default: the ONNX's size; 224 "
              "for a new export].")
@click.option("--min-img-size", type=int, help="Smallest H = W (ONNX exported with --dynamic-hw only).")
@click.option("--max-img-size", type=int, help="Largest H = W (ONNX exported with --dynamic-hw only).")
@click.option("--workspace", type=float, metavar="GiB", help="Workspace memory limit [default: TensorRT's; on a "
              "Jetson, 1 GiB or a quarter of the free memory].")
@click.option("--timing-cache", metavar="PATH", default="auto", show_default=True,
              help="Timing cache read before and written after the build, if made for this TensorRT and GPU and "
              "never emptied ('auto': timing.cache beside the plan).")
@click.option("--no-timing-cache", is_flag=True, help="Build without a timing cache.")
@click.option("--opt-level", type=int, help="Builder optimization level 0-5 [default: TensorRT's, 3].")
@click.option("--hw-compat", type=click.Choice(["none", "ampere+", "same-cc"]), default="none", show_default=True,
              help="Hardware compatibility: ampere+ runs on any GPU of compute capability >= 8.0.")
@click.option("--version-compatible", is_flag=True, help="Plan that newer TensorRT versions of its major (and 11.x, from 10.x) can run too.")
@click.option("--dla-core", type=int, help="Build for this DLA core (Jetson; FP16/INT8, one static shape), GPU "
              "fallback on.")
@click.option("--tf32", is_flag=True, help="Allow TF32 in FP32 layers (faster, less exact).")
@click.option("--weak-typing", is_flag=True, help="TensorRT 10 only: FP16/INT8 builder flags instead of a strongly "
              "typed network.")
@click.option("--images", type=click.Path(file_okay=False), help="Folder of images to validate on "
              "[default: random batches and sample photos].")
@click.option("--no-validate", is_flag=True, help="Skip the check against PyTorch.")
@click.option("--force", is_flag=True, help="Rebuild every artifact even when the one on disk is current.")
@click.option("--device", type=int, default=0, show_default=True, help="CUDA device index.")
@click.option("--bundle", type=click.Path(dir_okay=False), help="On the device: build from this bundle's ONNX "
              "file, check the engine on the bundled images, and add it to the bundle.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Plan file [default: engines/<onnx name>_<precision>.plan]; the manifest goes beside it.")
@common
def trt(model, variant, weights, precision, calib, num_calib, min_batch, opt_batch, max_batch, img_size, min_img_size,
        max_img_size, workspace, timing_cache, no_timing_cache, opt_level, hw_compat, version_compatible, dla_core,
        tf32, weak_typing, images, no_validate, force, device, bundle, output, as_json):
    """Build a validated TensorRT engine and its manifest: from MODEL.onnx, or from a checkpoint through the
    whole chain (export, FP16/INT8 conversion, build, validate), reusing earlier artifacts that are current.

    \b
    Examples:
      vanexport trt --precision fp16              # engines/van_b0_224_fp16.plan (+ .manifest.json)
      vanexport trt engines/van_b0_224.onnx --precision fp32 --max-batch 8 --hw-compat ampere+
      vanexport trt --bundle van_b0_bundle.tar.gz --precision fp16   # on the device
    """
    if precision is not None:
        calib_only_for_int8(calib, num_calib, precision == "int8", "pass --precision int8")
    from .render import render_trt
    from ..pipeline import export_trt
    from ..trt.settings import BuildSettings

    settings = BuildSettings(precision=precision or "fp32", min_batch=min_batch, opt_batch=opt_batch,
                             max_batch=max_batch, img_size=img_size, min_img_size=min_img_size,
                             max_img_size=max_img_size, workspace_gib=workspace, opt_level=opt_level,
                             hw_compat=hw_compat, version_compatible=version_compatible, dla_core=dla_core,
                             tf32=tf32, weak_typing=weak_typing)
    if bundle:
        clashes = [flag for flag, value in (("MODEL", model), ("--variant", variant), ("--weights", weights),
                                            ("--calib", calib), ("--images", images), ("-o", output)) if value]
        if clashes:
            raise VanexportError(f"--bundle builds from the bundle's own files; {', '.join(clashes)} cannot be used "
                                 "with it", "drop them (the bundle's ONNX, check images and outputs are used)")
        from .render import render_device_build
        from ..ship.on_device import build_into_bundle

        _emit(build_into_bundle(bundle, settings, device=device, progress=_progress()), as_json, render_device_build)
        return
    result = export_trt(model, variant=variant, weights=weights, precision=precision, calib=calib,
                        num_calib=num_calib, settings=settings, output=output,
                        timing_cache=None if no_timing_cache else timing_cache, validate=not no_validate,
                        images=images, force=force, device=device, progress=_progress())
    _finish(result, as_json, render_trt)


@cli.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False))
@common
def inspect_cmd(path, as_json):
    """What is in an ONNX file (I/O, opset, op histogram, metadata, parameters) or a TensorRT plan (manifest,
    whether it fits this machine, per-layer table when TensorRT is installed)."""
    from ..inspection import inspect_file
    from .render import render_inspect

    _emit(inspect_file(path).to_dict(), as_json, render_inspect)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--weights", metavar="PATH|URL|official", help="Weights the model was exported from "
              "[default: rebuilt from its metadata].")
@click.option("--images", type=click.Path(file_okay=False), help="Folder of images to compare on "
              "[default: random batches and scikit-image's sample photos].")
@click.option("--atol", type=float, help="Absolute tolerance on logits [FP32 default: 1e-4, FP32 engine 1e-3; FP16/INT8 "
              "are judged by agreement unless --atol is given].")
@click.option("--rtol", type=float, help="Relative tolerance (an output passes on atol OR rtol) [default: 0, off].")
@common
def validate(model, weights, images, atol, rtol, as_json):
    """Compare an exported MODEL (.onnx, or a TensorRT .plan with its manifest) against its PyTorch reference
    (variant and preprocessing read from its metadata or manifest).

    The verdict fits the file's precision: FP32 by max abs error; FP16 by top-1 agreement and cosine; INT8 by
    top-1 agreement and accuracy drop (class subfolders in --images give labels). Exit code 1 when it fails.
    """
    from .render import render_validation
    from ..check.validate import validate as run_validate

    report = run_validate(model, weights=weights, images=images, atol=atol, rtol=rtol, progress=_progress())
    _finish(report, as_json, render_validation, failed=not report.passed)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise VanexportError(f"{flag} '{text}' is not a comma-separated list of integers", f"pass e.g. {flag} 1,8") from None


@cli.command()
@click.option("--variant", "variants", multiple=True, metavar="b0[,b1..]",
              help="VAN variant(s), repeated or comma-separated [default: b0, or guessed from --weights].")
@weights_options("Checkpoint (any layout), URL, or 'official' "
              "[default: random weights, seed --seed: real speed, meaningless top-1].")
@click.option("--num-classes", type=int, help="Classifier size [default: from the checkpoint, else 1000].")
@click.option("--backends", metavar="torch,ort,ov,trt", help="Backends to time [default: all].")
@click.option("--precision", "precisions", metavar="fp32,fp16,int8,bf16", help="Precisions to time [default: all].")
@click.option("--batch", "batches", default="1", show_default=True, metavar="1,8,32", help="Batch sizes.")
@click.option("--img-size", type=int, default=224, show_default=True, help="Input height = width (multiple of 32).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed calls before timing each row.")
@click.option("--iters", type=int, help="Timed calls per row (instead of --seconds).")
@click.option("--seconds", type=float, help="Time each row for this long, at least 10 calls [default: 2].")
@click.option("--threads", type=int, help="CPU threads for PyTorch and ONNX Runtime [default: each library's own].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Only rows on this device [default: both].")
@click.option("--calib", type=click.Path(), metavar=CALIB_METAVAR, help="Calibration images (folder) or .npz for "
              "the INT8 rows.")
@click.option("--num-calib", type=int, help="Calibration images to use [default: all, up to 256].")
@click.option("--images", type=click.Path(file_okay=False), help="Images every row's fidelity is measured on; class "
              "subfolders (0/, 1/ ... or one per class) add accuracy [default: 64 crops of the sample photos].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights and the inputs.")
@click.option("--json", "json_path", is_flag=False, flag_value="-", metavar="[PATH]",
              help="Write the JSON record to PATH, or to stdout (instead of the table) when no PATH is given.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one CSV line per row to PATH.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a latency/throughput plot (PNG).")
@debug_option
def bench(variants, weights, num_classes, backends, precisions, batches, img_size, warmup, iters, seconds, threads,
          device, calib, num_calib, images, seed, json_path, csv_path, plot_path):
    """Latency, throughput, memory and fidelity of every backend and precision, side by side in one run.

    Each row is timed in a fresh process after a warm-up, on rotating batches, and its logits on every image of
    the fidelity set (--images, or 64 crops of the sample photos) are compared with PyTorch FP32 (agreement, and
    accuracy when the images have class subfolders). Rows this machine cannot run are listed with the reason.
    Exit code 1 when a row failed or failed its fidelity check.

    \b
    Example:
      vanexport bench --variant b0,b1 --batch 1,8 --backends torch,ort --csv bench.csv --plot bench.png
    """
    from ..bench.output import check_plot_path, write_csv, write_json, write_plot
    from ..bench.run import DEFAULT_SECONDS, benchmark
    from ..files import check_output_path
    from .render import render_bench

    if iters is not None and seconds is not None:
        raise VanexportError("--iters and --seconds contradict each other", "pass only one of them")
    for path in (p for p in (json_path, csv_path, plot_path) if p and p != "-"):
        check_output_path(path)
    if plot_path:
        check_plot_path(plot_path)
    if precisions is not None:
        calib_only_for_int8(calib, num_calib, "int8" in precisions.lower().split(","), "add int8 to --precision")
    names = [v for arg in variants for v in arg.split(",") if v.strip()]
    report = benchmark(names, weights, backends=backends, precisions=precisions, batches=_int_list(batches, "--batch"),
                       img_size=img_size, warmup=warmup, iters=iters,
                       seconds=seconds if seconds is not None else DEFAULT_SECONDS, threads=threads, device=device,
                       calib=calib, num_calib=num_calib, images=images, num_classes=num_classes, seed=seed,
                       progress=_progress())
    record = report.to_dict()
    if json_path == "-":  # the table lists them; with the JSON on stdout they go to stderr too
        for w in record["warnings"]:
            click.echo(f"warning: {w}", err=True)
    for path, write in ((json_path, write_json), (csv_path, write_csv), (plot_path, write_plot)):
        if path and path != "-":
            write(record, path)
            click.echo(printable(f"• wrote {path}"), err=True)
    _emit(record, json_path == "-", render_bench)
    if report.failed:
        sys.exit(1)


@cli.command()
@click.option("--variant", type=click.Choice(VARIANT_NAMES, case_sensitive=False), default=None,
              help="VAN variant [default: b0, or guessed from --weights].")
@weights_options("Checkpoint (any layout), URL, or 'official' "
              "[default: random weights, for testing the pipeline only].")
@click.option("--model", "model", type=click.Path(dir_okay=False), help="Bundle this FP32 ONNX file (made by "
              "`vanexport onnx`) instead of exporting.")
@click.option("--precision", default="fp32", show_default=True, metavar="LIST",
              help="Comma-separated precisions: fp32,fp16,int8 (FP32 is always included).")
@click.option("--calib", type=click.Path(), metavar=CALIB_METAVAR, help="Calibration images (folder) or .npz for "
              "INT8.")
@click.option("--num-calib", type=int, help="Calibration inputs for INT8 [default: all, up to 256].")
@click.option("--images", type=click.Path(file_okay=False), help="Held-out images to validate every precision on "
              "[default: random batches and sample photos].")
@click.option("--engines", multiple=True, type=click.Path(dir_okay=False), metavar="PLAN",
              help="TensorRT plan to include, with the manifest beside it (repeatable).")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="TensorRT timing cache to ship.")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line [default: the "
              "checkpoint's own, else ImageNet-1k for 1000 classes].")
@click.option("--check-images", type=click.Path(file_okay=False), help="Up to 16 images to ship as check inputs "
              "[default: scikit-image's sample photos].")
@click.option("--img-size", type=int, default=224, show_default=True, help="Input height = width when exporting.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights.")
@click.option("--no-validate", is_flag=True, help="Skip the comparisons with PyTorch (no fidelity recorded).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output archive [default: engines/van_<variant>_<size>_bundle.tar.gz].")
@common
def bundle(variant, weights, model, precision, calib, num_calib, images, engines, timing_cache, labels, check_images,
           img_size, seed, no_validate, output, as_json):
    """Pack what a device needs into one checked tar.gz: ONNX per precision, engines, labels, manifest.

    \b
    Example:
      vanexport bundle --variant b0 --weights official --precision fp32,fp16 -o van_b0_bundle.tar.gz
    """
    calib_only_for_int8(calib, num_calib, "int8" in precision.lower().split(","), "add int8 to --precision")
    from .render import render_bundle
    from ..ship.bundle import make_bundle

    result = make_bundle(variant, weights, model=model, precisions=precision, calib=calib, num_calib=num_calib,
                         images=images, engines=engines, timing_cache=timing_cache, labels=labels,
                         check_images=check_images, img_size=img_size, output=output, seed=seed,
                         validate=not no_validate, progress=_progress())
    _finish(result, as_json, render_bundle)


@cli.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="New folder to unpack into.")
@common
def unpack(bundle_path, output, as_json):
    """Check a bundle (paths, links, sha256 of every file, schema version) and unpack it; nothing on failure."""
    from .render import render_unpack
    from ..device.bundle import unpack_bundle

    _emit(unpack_bundle(bundle_path, output, progress=_progress()), as_json, render_unpack)


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="A bundle (.tar.gz), .onnx or .plan.")
@click.option("--topk", type=int, default=5, show_default=True, help="Classes to show per image.")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "openvino"]),
              default="auto", show_default=True, help="Force a backend [auto: TensorRT > ORT CUDA > fastest CPU].")
@click.option("--precision", type=click.Choice([*PRECISIONS, *RUNTIME_PRECISIONS]),
              help="Use only this precision (bf16: the FP32 file in BF16 through OpenVINO, where the CPU has it).")
@common
def predict(images, model, topk, backend, precision, as_json):
    """Classify IMAGE files (or folders) without PyTorch, and say which backend ran.

    \b
    Example:
      vanexport predict cat.jpg dog.png --model van_b0_bundle.tar.gz --topk 3
    """
    from .render import render_predict
    from ..device.classify import predict as run_predict

    result = run_predict(images, model, topk=topk, backend=backend, precision=precision, progress=_progress())
    for why in result.skipped_reasons:
        click.echo(printable(f"warning: {why}; skipped"), err=True)
    _finish(result, as_json, render_predict)


@cli.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Model repository folder.")
@click.option("--name", help="Model name, a plain folder name (letters, digits, '_', '-', '.') [default: "
              "van_<variant>; TensorRT models add _trt_<precision>].")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="Which bundled ONNX the ONNX Runtime model serves.")
@click.option("--max-batch", type=int, default=32, show_default=True,
              help="max_batch_size for the ONNX model (plans use their profile's max batch).")
@click.option("--instances", type=int, default=1, show_default=True, help="Instances per model.")
@click.option("--cpu", is_flag=True, help="Run the ONNX Runtime model on CPU instances (KIND_CPU).")
@click.option("--max-queue-delay-us", type=int, default=0, show_default=True,
              help="Dynamic batching delay [default: none, Triton's own default; tune with perf_analyzer].")
@click.option("--ensemble", is_flag=True, help="Also a Python-backend preprocessing model and an ensemble that "
              "takes encoded images (with a tritonclient example, client.py).")
@click.option("--force", is_flag=True, help="Replace model folders that already exist.")
@click.option("--target", metavar="RELEASE|tensorrt:VERSION", help="The Triton container release (e.g. 26.07; "
              "the TensorRT of its trtllm-python-py3 image) or TensorRT version the plans must load on "
              "[default: 26.07].")
@common
def triton(bundle_path, output, name, precision, max_batch, instances, cpu, max_queue_delay_us, ensemble, force,
           target, as_json):
    """Write a Triton model repository (ONNX Runtime, and TensorRT where the bundle has plans)."""
    from .render import render_triton
    from ..ship.triton import triton_repository

    result = triton_repository(bundle_path, output, name=name, precision=precision, max_batch=max_batch,
                               instances=instances, cpu=cpu, max_queue_delay_us=max_queue_delay_us,
                               ensemble=ensemble, force=force, target=target, progress=_progress())
    _finish(result, as_json, render_triton)


@cli.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="config_infer.txt", show_default=True, type=click.Path(dir_okay=False),
              help="nvinfer config file (labels and ONNX are written beside it).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]),
              help="network-mode and ONNX file [default: fp16 if bundled, else fp32].")
@click.option("--batch", "batch_size", type=int, help="nvinfer batch-size [default: 1].")
@renamed_option("--batch-size", "--batch", "batch_size", 1)
@click.option("--threshold", type=float, default=0.0, show_default=True, help="classifier-threshold: the probability "
              "a top-1 must exceed to be reported (0: every frame or object gets its top-1).")
@click.option("--gpu-id", type=int, default=0, show_default=True, help="gpu-id.")
@click.option("--secondary", is_flag=True, help="Classify objects of a primary detector (process-mode=2).")
@click.option("--gie-id", type=int, help="gie-unique-id of this classifier [default: 1, or 2 with --secondary].")
@click.option("--operate-on-gie-id", type=int, default=1, show_default=True,
              help="With --secondary: gie-unique-id of the detector whose objects are classified.")
@click.option("--crop/--no-crop", default=None, help="Full frames: VAN's centre crop through nvdspreprocess "
              "[default], or nvinfer's stretch of the whole frame.")
@click.option("--frame", default="1920x1080", show_default=True, metavar="WxH",
              help="nvstreammux width x height, for the crop's ROI.")
@click.option("--images", type=click.Path(file_okay=False), help="Measure the top-1 agreement of this "
              "preprocessing (and the other) with the validated one on these images.")
@click.option("--build-engine", is_flag=True, help="Build and check the TensorRT plan here (needs TensorRT; "
              "required for INT8) and point model-engine-file at it.")
@click.option("--target", metavar="RELEASE|tensorrt:VERSION", help="The DeepStream release (e.g. 9.2, 9.2-jetson) "
              "or TensorRT version a plan built here must load on [default: 9.2].")
@common
def deepstream(bundle_path, output, precision, batch_size, threshold, gpu_id, secondary, gie_id, operate_on_gie_id,
               crop, frame, images, build_engine, target, as_json):
    """Write a DeepStream nvinfer classifier config, its label file, a softmax ONNX and (full frames) the
    nvdspreprocess config of VAN's centre crop."""
    from .render import render_deepstream
    from ..ship.deepstream import deepstream_config

    result = deepstream_config(bundle_path, output, precision=precision, batch_size=batch_size, threshold=threshold,
                               gpu_id=gpu_id, secondary=secondary, gie_id=gie_id,
                               operate_on_gie_id=operate_on_gie_id, crop=crop, frame=frame, images=images,
                               build_engine=build_engine, target=target, progress=_progress())
    _finish(result, as_json, render_deepstream)


_FP16_OPTIONS = ("keep_fp32", "fp16_layernorm", "fp16_io")
_INT8_OPTIONS = ("calib", "num_calib", "method", "exclude", "for")


def _fp16_options(f):
    f = click.option("--fp16-io", is_flag=True, help="FP16: FP16 model input/output [default: FP32, so callers need "
                     "not change].")(f)
    f = click.option("--fp16-layernorm", is_flag=True, help="FP16: convert LayerNormalization too (FP16 LayerNorm "
                     "can overflow).")(f)
    return click.option("--keep-fp32", multiple=True, metavar="OP_TYPE|REGEX",
                        help="FP16: op type (exact) or node-name regex to keep in FP32; repeat the flag for more. "
                        "LayerNormalization is always kept unless --fp16-layernorm.")(f)


def _check_options(f):
    f = click.option("-o", "--output", type=click.Path(dir_okay=False),
                     help="Output file [default: MODEL_fp16.onnx / MODEL_int8.onnx beside MODEL].")(f)
    f = click.option("--no-validate", is_flag=True, help="Write the file without comparing it with PyTorch.")(f)
    f = click.option("--weights", metavar="PATH|URL|official", help="Weights of the PyTorch reference "
                     "[default: recorded at export].")(f)
    return click.option("--images", type=click.Path(file_okay=False),
                        help="Held-out images to check on, with accuracy when they are in class subfolders "
                        "[default: random batches and sample photos]. Nothing is written when the check fails.")(f)


def _convert(model, precision, options: dict, images, weights, no_validate, output, as_json):
    """`quantize` (and its old spelling `fp16`): the conversion, checked against PyTorch, and its report."""
    from .render import render_precision

    calib_only_for_int8(options.get("calib"), options.get("num_calib"), precision == "int8", "pass --precision int8")
    wrong = _INT8_OPTIONS if precision == "fp16" else _FP16_OPTIONS
    given = [k for k in wrong if options.get(k) not in (None, False, ())]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise VanexportError(f"{flags} cannot be used with --precision {precision}",
                             "drop them, or choose the precision they belong to")
    if precision == "fp16":
        from ..precision.fp16 import convert_fp16

        result = convert_fp16(model, output, keep_fp32=options["keep_fp32"], keep_io_types=not options["fp16_io"],
                              layernorm_fp16=options["fp16_layernorm"], images=images, weights=weights,
                              validate=not no_validate, progress=_progress())
    elif options.get("for") == "cpu":
        from ..precision.int8_cpu import quantize_int8_cpu

        if not options.get("calib"):
            raise VanexportError("INT8 needs calibration images", "pass --calib DIR (a folder of real images) or an .npz")
        if options.get("method") is not None:
            raise VanexportError("--method cannot be used with --for cpu", "drop it: NNCF sets the CPU file's ranges")
        result = quantize_int8_cpu(model, options["calib"], output, num_calib=options["num_calib"],
                                   exclude=options["exclude"], images=images, weights=weights,
                                   validate=not no_validate, progress=_progress())
    else:
        from ..precision.int8 import quantize_int8

        if not options.get("calib"):
            raise VanexportError("INT8 needs calibration images", "pass --calib DIR (a folder of real images) or an .npz")
        result = quantize_int8(model, options["calib"], output, num_calib=options["num_calib"],
                               method=options["method"], exclude=options["exclude"], images=images, weights=weights,
                               validate=not no_validate, progress=_progress())
    _finish(result, as_json, render_precision)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@precision_option(("fp16", "int8"), "int8", "FP16: a mixed FP16 graph (LayerNorm kept in FP32). INT8: a Q/DQ graph "
                  "calibrated on --calib.")
@click.option("--calib", type=click.Path(), metavar=CALIB_METAVAR, help="INT8: calibration images (recursive, class "
              "subfolders allowed) or an .npz of preprocessed batches.")
@click.option("--num-calib", type=int, help="INT8: calibration inputs to use [default: all, up to 256].")
@click.option("--method", type=click.Choice(["entropy", "max", "percentile"]), default=None,
              help="INT8: how activation ranges are chosen from the calibration data [default: entropy].")
@click.option("--exclude", multiple=True, metavar="REGEX|OP_TYPE",
              help="INT8: node-name regex (or op type) to leave unquantized; repeat the flag for more.")
@click.option("--for", "int8_for", type=click.Choice(["tensorrt", "cpu"]), default=None,
              help="INT8: the runtime the file is laid out for: TensorRT's Q/DQ form, or the CPU (NNCF, run by "
                   "OpenVINO; the cpu-int8 extra) [default: tensorrt].")
@_fp16_options
@_check_options
@common
def quantize(model, precision, calib, num_calib, method, exclude, int8_for, keep_fp32, fp16_layernorm, fp16_io,
             images, weights, no_validate, output, as_json):
    """Convert an FP32 MODEL to FP16 or INT8 for TensorRT strongly typed builds, checked against PyTorch before it
    is written (sample photos and random batches, or --images).

    INT8 calibration ranges are cached beside the output and reused when the model and images are unchanged.

    \b
    Examples:
      vanexport quantize engines/van_b0_224.onnx --precision int8 --calib calib/ --images heldout/
      vanexport quantize engines/van_b0_224.onnx --precision int8 --for cpu --calib calib/ --images heldout/
      vanexport quantize engines/van_b0_224.onnx --precision fp16
    """
    options = {"calib": calib, "num_calib": num_calib, "method": method, "exclude": exclude, "for": int8_for,
               "keep_fp32": keep_fp32, "fp16_layernorm": fp16_layernorm, "fp16_io": fp16_io}
    if precision == "int8" and method is None and int8_for != "cpu":
        options["method"] = "entropy"
    _convert(model, precision, options, images, weights, no_validate, output, as_json)


@cli.command(hidden=True)
@click.argument("model", type=click.Path(dir_okay=False))
@_fp16_options
@_check_options
@common
def fp16(model, keep_fp32, fp16_layernorm, fp16_io, images, weights, no_validate, output, as_json):
    """The old spelling of `vanexport quantize MODEL --precision fp16`."""
    _convert(model, "fp16", dict(keep_fp32=keep_fp32, fp16_layernorm=fp16_layernorm, fp16_io=fp16_io), images,
             weights, no_validate, output, as_json)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@precision_option(("fp16", "int8"), "int8", "What to analyse: INT8 (recommends --exclude) or FP16 (recommends "
                  "--keep-fp32).")
@click.option("--calib", type=click.Path(), metavar=CALIB_METAVAR, help="Calibration images or .npz (needed for "
              "INT8).")
@click.option("--images", type=click.Path(file_okay=False),
              help="Held-out images to measure on [default: the --calib folder, which flatters INT8].")
@click.option("--mode", type=click.Choice(["only", "leave-out"]), default="only", show_default=True,
              help="Convert one group at a time, or everything but one group at a time.")
@click.option("--depth", type=int, default=2, show_default=True,
              help="Group size: 1 = one group per block (/block1.0), 2 = attn/mlp of each block (/block1.0/attn).")
@click.option("--num-calib", type=int, help="Calibration inputs to use [default: all, up to 256].")
@click.option("--method", type=click.Choice(["entropy", "max", "percentile"]), default="entropy", show_default=True,
              help="INT8 calibration method.")
@click.option("--num-images", type=int, help="Measure on this many of the images (a seeded pick) [default: all].")
@common
def sensitivity(model, precision, calib, images, mode, depth, num_calib, method, num_images, as_json):
    """Find which layers lose accuracy in INT8 (or FP16), and the --exclude (--keep-fp32) set that fixes it.

    Exit code 1 when no set of groups brings the model within the threshold.

    \b
    Example:
      vanexport sensitivity engines/van_b0_224.onnx --calib calib/ --images heldout/
    """
    calib_only_for_int8(calib, num_calib, precision == "int8", "pass the images to measure FP16 on with --images")
    from .render import render_sensitivity
    from ..precision.sensitivity import sensitivity as run_sensitivity

    report = run_sensitivity(model, calib, images=images, precision=precision, mode=mode, depth=depth,
                             num_calib=num_calib, method=method, num_images=num_images, progress=_progress())
    _finish(report, as_json, render_sensitivity, failed=not report.passed)


@cli.command()
@common
def info(as_json):
    """Versions, ONNX Runtime providers, GPUs, and what each command is missing."""
    from ..machine import environment_info
    from .render import render_info

    _emit(environment_info(), as_json, render_info)


def main():
    cli(prog_name="vanexport")
