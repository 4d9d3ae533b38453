"""`vanexport triton`: a Triton Inference Server model repository from a bundle.

One model for the ONNX Runtime backend and, for each precision that has plans, one for the TensorRT backend
(plans for several GPU architectures share a model through `cc_model_filenames`). With `ensemble`, two more: a
Python-backend model that turns encoded images (JPEG, PNG ...) into VAN's input tensor, and an ensemble that chains
it to the ONNX Runtime model, so clients send image files; `client.py` beside the ensemble's config shows how.

Each config.pbtxt is built as Triton's own `inference.ModelConfig` protobuf message (the schema the `tritonclient`
package ships) and parsed back from the written text before the folder is moved into place. Dynamic batching is
Triton's default (`dynamic_batching { }`: no queue delay, no preferred sizes), the documented starting point;
a delay is the user's tuning (`--max-queue-delay-us`, measured with perf_analyzer).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import VanexportError
from ..formats.fields import INTERPOLATIONS, path_part
from .checked import REFUSED, bundle_facts, bundle_file_name

PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan", "ensemble": "ensemble"}
BACKENDS = ("python",)  # models named by backend rather than platform
IMAGE_INPUT, PIXELS_OUTPUT = "IMAGE", "PIXELS"


@dataclass
class TritonResult:
    repository: str
    models: list[dict]
    schema: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def model_config_pb2():
    """Triton's model_config.proto compiled for Python, from `tritonclient`.

    tritonclient ships it as tritonclient.grpc.model_config_pb2, but importing that runs the package's gRPC
    client, which needs grpcio. The schema itself needs only protobuf, so without grpcio the module is loaded
    from its file in the installed package.
    """
    try:
        from tritonclient.grpc import model_config_pb2 as pb2

        return pb2
    except ImportError as e:
        missing = e
    except RuntimeError as e:  # tritonclient.grpc raises RuntimeError when grpcio is absent
        missing = e
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise VanexportError("`vanexport triton` needs the tritonclient package (Triton's model-config schema)",
                             "pip install 'vanexport[triton]' (or pip install tritonclient)") from missing
    path = Path(list(spec.submodule_search_locations)[0]) / "grpc" / "model_config_pb2.py"
    mod_spec = importlib.util.spec_from_file_location("vanexport_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def parse_model_config(text: str):
    """Parse config.pbtxt text with Triton's schema and check what the schema alone cannot; return the message."""
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    try:
        cfg = text_format.Parse(text, pb2.ModelConfig())
    except text_format.ParseError as e:
        raise VanexportError(f"config.pbtxt does not fit Triton's model-config schema: {e}",
                             "this is a bug in vanexport; please report it") from e
    problems = []
    if not cfg.name:
        problems.append("no name")
    if cfg.platform not in PLATFORMS.values() and cfg.backend not in (*PLATFORMS, *BACKENDS):
        problems.append(f"unknown platform '{cfg.platform}'" + (f" / backend '{cfg.backend}'" if cfg.backend else ""))
    if cfg.max_batch_size < 0:
        problems.append("negative max_batch_size")
    if cfg.HasField("dynamic_batching"):
        if cfg.max_batch_size == 0:
            problems.append("dynamic batching needs max_batch_size > 0")
        if any(b < 1 or b > cfg.max_batch_size for b in cfg.dynamic_batching.preferred_batch_size):
            problems.append("a preferred batch size is outside 1..max_batch_size")
    for t in list(cfg.input) + list(cfg.output):
        if not t.name or t.data_type == pb2.TYPE_INVALID or not t.dims or any(d == 0 or d < -1 for d in t.dims):
            problems.append(f"tensor '{t.name}' has no name, type or valid dims")
    if not cfg.input or not cfg.output:
        problems.append("no inputs or outputs")
    if cfg.platform == PLATFORMS["ensemble"]:
        problems += _ensemble_problems(cfg)
    elif cfg.HasField("ensemble_scheduling"):
        problems.append("ensemble_scheduling in a model that is not an ensemble")
    if problems:
        raise VanexportError("config.pbtxt is not a valid Triton model config: " + "; ".join(problems),
                             "this is a bug in vanexport; please report it")
    return cfg


def _ensemble_problems(cfg) -> list[str]:
    """What Triton's ensemble validation refuses that one config shows: no steps, instance groups, a step reading
    a tensor nothing produced before it, an ensemble output no step produces."""
    problems = []
    steps = list(cfg.ensemble_scheduling.step)
    if not steps:
        problems.append("an ensemble with no steps")
    if cfg.instance_group:
        problems.append("an ensemble has no instance_group (its composing models do)")
    available = {t.name for t in cfg.input}
    for i, step in enumerate(steps):
        if not step.model_name:
            problems.append(f"step {i} names no model")
        missing = sorted(set(step.input_map.values()) - available)
        if missing or not step.input_map or not step.output_map:
            problems.append(f"step {i} ({step.model_name}) reads {', '.join(missing) or 'nothing'} before any step "
                            "writes it" if missing else f"step {i} ({step.model_name}) maps no inputs or outputs")
        available |= set(step.output_map.values())
    unproduced = sorted({t.name for t in cfg.output} - available)
    if unproduced:
        problems.append(f"no step produces the ensemble output {', '.join(unproduced)}")
    return problems


def check_ensemble(ensemble, models: dict) -> None:
    """The checks across models that Triton makes when it loads an ensemble: every composing model exists, takes
    and gives the tensors the step maps, and batches at least as much as the ensemble."""
    problems = []
    for step in ensemble.ensemble_scheduling.step:
        m = models.get(step.model_name)
        if m is None:
            problems.append(f"composing model '{step.model_name}' is not in the repository")
            continue
        if missing := sorted(set(step.input_map) - {t.name for t in m.input}):
            problems.append(f"'{step.model_name}' has no input {', '.join(missing)}")
        if missing := sorted(set(step.output_map) - {t.name for t in m.output}):
            problems.append(f"'{step.model_name}' has no output {', '.join(missing)}")
        if m.max_batch_size and ensemble.max_batch_size > m.max_batch_size:
            problems.append(f"ensemble {ensemble.name} allows maximum batch size {ensemble.max_batch_size}, but "
                            f"'{m.name}' only {m.max_batch_size}")
    if problems:
        raise VanexportError("the ensemble does not fit its models: " + "; ".join(problems),
                             "this is a bug in vanexport; please report it")


def _dims(shape: list) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def _data_type(pb2, dtype: str, what: str):
    """Triton's data type for a tensor dtype in numpy's spelling (float16: a file converted with FP16 I/O)."""
    types = {"float32": pb2.TYPE_FP32, "float16": pb2.TYPE_FP16}
    if dtype not in types:
        raise VanexportError(f"{what} has {dtype} values, which this repository does not serve",
                             "bundle a model with float32 (or float16) inputs and outputs")
    return types[dtype]


def _config(pb2, name: str, platform: str, input_io: dict, num_classes: int, output_name: str, max_batch: int,
            kind: str, instances: int, delay_us: int = 0, filenames: dict[str, str] | None = None,
            default_file: str | None = None, dtypes: tuple[str, str] = ("float32", "float32")):
    cfg = pb2.ModelConfig(name=name, platform=platform, max_batch_size=max_batch)
    shape = input_io["shape"]
    in_dims = _dims(shape[1:] if max_batch else shape)
    cfg.input.add(name=input_io["name"], data_type=_data_type(pb2, dtypes[0], f"{name}'s input"), dims=in_dims)
    cfg.output.add(name=output_name, data_type=_data_type(pb2, dtypes[1], f"{name}'s output"),
                   dims=[num_classes] if max_batch else [shape[0] if isinstance(shape[0], int) else -1, num_classes],
                   label_filename="labels.txt")
    cfg.instance_group.add(count=instances, kind=pb2.ModelInstanceGroup.KIND_CPU if kind == "cpu" else
                           pb2.ModelInstanceGroup.KIND_GPU)
    if max_batch:
        cfg.dynamic_batching.SetInParent()  # `dynamic_batching { }`: Triton's defaults
        if delay_us:
            cfg.dynamic_batching.max_queue_delay_microseconds = delay_us
    if default_file:
        cfg.default_model_filename = default_file
    for cc, fname in (filenames or {}).items():
        cfg.cc_model_filenames[cc] = fname
    return cfg


def _preprocess_config(pb2, name: str, max_batch: int, pre, instances: int, dtype: str = "float32"):
    """The Python-backend model: encoded images in (TYPE_STRING, one per batch item), VAN's input out, in the
    model's input type (model.py casts to what its config says). Its preprocessing is in `parameters`, which
    model.py reads when Triton loads it (the script itself is the same for every bundle)."""
    cfg = pb2.ModelConfig(name=name, backend="python", max_batch_size=max_batch)
    cfg.input.add(name=IMAGE_INPUT, data_type=pb2.TYPE_STRING, dims=[1])
    cfg.output.add(name=PIXELS_OUTPUT, data_type=_data_type(pb2, dtype, name),
                   dims=[3, pre.input_size, pre.input_size])
    cfg.instance_group.add(count=instances, kind=pb2.ModelInstanceGroup.KIND_CPU)  # decoding runs on the CPU
    cfg.dynamic_batching.SetInParent()
    for key, value in preprocess_parameters(pre).items():
        cfg.parameters[key].string_value = value
    return cfg


def preprocess_parameters(pre) -> dict[str, str]:
    """The checked preprocessing (vanexport.ship.checked) as the string parameters model.py reads: numbers written
    by Python (json: floats read back exactly) and the filter's name, one of INTERPOLATIONS."""
    return {"resize_size": str(int(pre.resize_size)), "input_size": str(int(pre.input_size)),
            "interpolation": INTERPOLATIONS[INTERPOLATIONS.index(pre.interpolation)],
            "mean": json.dumps([float(v) for v in pre.mean]), "std": json.dumps([float(v) for v in pre.std])}


def _ensemble_config(pb2, name: str, max_batch: int, preprocess: str, model: str, input_name: str,
                     output_name: str, num_classes: int, output_dtype: str = "float32"):
    cfg = pb2.ModelConfig(name=name, platform=PLATFORMS["ensemble"], max_batch_size=max_batch)
    cfg.input.add(name=IMAGE_INPUT, data_type=pb2.TYPE_STRING, dims=[1])
    cfg.output.add(name=output_name, data_type=_data_type(pb2, output_dtype, name), dims=[num_classes],
                   label_filename="labels.txt")
    first = cfg.ensemble_scheduling.step.add(model_name=preprocess, model_version=-1)
    first.input_map[IMAGE_INPUT] = IMAGE_INPUT  # key: the composing model's tensor, value: the ensemble's
    first.output_map[PIXELS_OUTPUT] = "pixels"
    second = cfg.ensemble_scheduling.step.add(model_name=model, model_version=-1)
    second.input_map[input_name] = "pixels"
    second.output_map[output_name] = output_name
    return cfg


# The two scripts are the same for every bundle: nothing from a bundle is ever pasted into them. model.py reads its
# settings from its own config (Triton hands it the config as JSON); client.py asks the server.
PREPROCESS_MODEL = '''"""Triton Python backend: encoded images (TYPE_STRING) -> a VAN classifier's input, preprocessed
as vanexport does: resize the short side, centre-crop, scale to [0, 1], normalise with mean and std. The sizes, the
filter, mean and std are this model's config.pbtxt `parameters`, read (and checked) when Triton loads the model; the
tensors are its config's input and output. Written by vanexport; needs numpy and Pillow in Triton's Python
environment."""
import io
import json
import math

import numpy as np
from PIL import Image
import triton_python_backend_utils as pb_utils

RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3}  # PIL.Image.Resampling values


def settings(config: dict) -> dict:
    """The preprocessing in the model config's parameters; ValueError (the model does not load) if one is wrong."""
    p = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    try:
        resize, size = int(p["resize_size"]), int(p["input_size"])
        mean, std = [float(v) for v in json.loads(p["mean"])], [float(v) for v in json.loads(p["std"])]
        resample = RESAMPLE[p["interpolation"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"the preprocessing parameters in config.pbtxt are missing or malformed ({e!r})") from None
    if not 0 < size <= resize or len(mean) != 3 or len(std) != 3 or not all(map(math.isfinite, mean + std)) \\
            or min(std) <= 0:
        raise ValueError("the preprocessing parameters in config.pbtxt are out of range")
    return {"resize": resize, "size": size, "resample": resample, "mean": np.array(mean, np.float32),
            "std": np.array(std, np.float32)}


def preprocess(blob: bytes, s: dict) -> np.ndarray:
    image = Image.open(io.BytesIO(blob)).convert("RGB")
    w, h = image.size
    short, crop = s["resize"], s["size"]
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)  # torchvision Resize(int)
    image = image.resize(size, resample=s["resample"])
    left, top = int(round((size[0] - crop) / 2.0)), int(round((size[1] - crop) / 2.0))
    x = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.moveaxis((x - s["mean"]) / s["std"], -1, 0))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.settings = settings(config)
        self.image, self.pixels = config["input"][0]["name"], config["output"][0]["name"]
        self.dtype = pb_utils.triton_string_to_numpy(config["output"][0]["data_type"])

    def execute(self, requests):
        responses = []
        for request in requests:  # exactly one response per request
            blobs = pb_utils.get_input_tensor_by_name(request, self.image).as_numpy()  # object array [batch, 1]
            try:
                x = np.stack([preprocess(bytes(b), self.settings) for b in blobs.reshape(-1)]).astype(self.dtype)
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.pixels, x)]))
            except Exception as e:  # an image Pillow cannot read fails its request, not the model
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses
'''

CLIENT = '''"""Classify image files with the ensemble this file lies beside, on a running Triton server
(written by vanexport).

    pip install "tritonclient[http]"
    python client.py cat.jpg dog.png --url localhost:8000

Triton names a model by its folder, so the model is this file's folder (--model for another); the names of its input
and output are asked from the server.
"""
import argparse
import os

import numpy as np
import tritonclient.http as httpclient


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--url", default="localhost:8000", help="host:port of Triton's HTTP endpoint (no scheme)")
    ap.add_argument("--model", default=os.path.basename(os.path.dirname(os.path.abspath(__file__))),
                    help="the ensemble's name [default: the folder this file is in]")
    ap.add_argument("--topk", type=int, default=5)
    args = ap.parse_args(argv)
    client = httpclient.InferenceServerClient(url=args.url)
    metadata = client.get_model_metadata(args.model)
    image, output = metadata["inputs"][0]["name"], metadata["outputs"][0]["name"]
    blobs = []
    for path in args.images:
        with open(path, "rb") as f:
            blobs.append([f.read()])
    data = np.array(blobs, dtype=np.object_)  # [batch, 1] of bytes; np.object_ keeps trailing zero bytes
    request = httpclient.InferInput(image, list(data.shape), "BYTES")
    request.set_data_from_numpy(data, binary_data=True)  # binary: JPEG bytes are not UTF-8
    result = client.infer(args.model, inputs=[request],
                          outputs=[httpclient.InferRequestedOutput(output, binary_data=True, class_count=args.topk)])
    for path, top in zip(args.images, result.as_numpy(output)):
        # class_count answers "score:index:label" strings, best first
        print(path, *[t.decode() if isinstance(t, bytes) else str(t) for t in top], sep="\\n  ")


if __name__ == "__main__":
    main()
'''

def triton_repository(bundle: str | os.PathLike, output: str | os.PathLike, *, name: str | None = None,
                      precision: str = "fp32", max_batch: int = 32, instances: int = 1, cpu: bool = False,
                      max_queue_delay_us: int = 0, ensemble: bool = False, force: bool = False,
                      target: str | None = None, progress: Callable[[str], None] | None = None) -> TritonResult:
    """Write model folders for `bundle` into the Triton model repository `output` (created if needed); with
    `ensemble`, also `<name>_preprocess` (Python backend) and `<name>_ensemble`, which takes encoded images.

    Only checked values (vanexport.ship.checked) reach what is written: each config.pbtxt through protobuf's text
    format (and read back to be exactly the message built), model.py and client.py the same for every bundle, folder
    names plain names inside `output`. `target`: the Triton release (or tensorrt:VERSION) the plans are checked
    against (`targets.resolve_target`)."""
    from google.protobuf import text_format

    from ..device.bundle import open_bundle
    from ..formats.onnx_wire import external_data_locations, io_dtypes
    from .targets import resolve_target

    step = progress or (lambda msg: None)
    if max_batch < 1 or instances < 1:
        raise VanexportError("--max-batch and --instances must be 1 or more", "pass positive numbers")
    if max_queue_delay_us < 0:
        raise VanexportError(f"--max-queue-delay-us {max_queue_delay_us} is negative", "pass 0 (Triton's default) "
                             "or a delay in microseconds")
    if name is not None:
        _model_name(name, "--name")
    bundle_name = bundle_file_name(bundle)
    aim = resolve_target("triton", target)
    pb2 = model_config_pb2()
    step(f"checking and unpacking {bundle_name}")
    b = open_bundle(bundle)
    facts = bundle_facts(b)
    base = name or f"van_{facts.variant}"
    io, out_name = {"name": facts.input_name, "shape": facts.input_shape}, facts.output_name
    if external := external_data_locations(b.onnx(precision)):
        raise VanexportError(f"the bundle's {precision.upper()} ONNX file keeps tensors in external data files "
                             f"({', '.join(repr(x) for x in external[:3])}), which the runtime would open wherever "
                             "they point", "bundle a model exported as one file (VAN's are under 2 GB)")
    static = b.static_batch is not None
    warns: list[str] = []
    if static:
        warns.append(f"the ONNX file has a static batch of {b.static_batch}: max_batch_size 0, no dynamic batching")
        if ensemble:
            raise VanexportError("--ensemble needs a model with a dynamic batch (the ensemble batches requests)",
                                 "bundle a model exported without --batch")
    ort_batch = 0 if static else max_batch

    plans: dict[str, list] = {}
    for e in b.engines:
        plans.setdefault(e.entry.precision, []).append(e)
    # the file's own input and output types: an FP16-I/O file takes and gives float16
    onnx_in, onnx_out = io_dtypes(b.onnx(precision))
    ort_dtypes = (onnx_in.get(io["name"], "float32"), onnx_out.get(out_name, "float32"))
    # (model name, platform or backend, {file in the model folder: source path or text}, config)
    models = [(base, "onnxruntime", {"1/model.onnx": b.onnx(precision)},
               _config(pb2, base, PLATFORMS["onnxruntime"], io, b.num_classes, out_name, ort_batch,
                       "cpu" if cpu else "gpu", instances, max_queue_delay_us, dtypes=ort_dtypes))]
    notes: dict[str, list[str]] = {}  # model name -> comment lines for its config.pbtxt
    for prec, engines in sorted(plans.items()):
        by_cc: dict[str, object] = {}
        for e in engines:
            cc = _compute_capability(e)
            if cc in by_cc:
                warns.append(f"two {prec} plans for compute capability {cc}: keeping {e.plan_path.name!r}")
            by_cc[cc] = e
        files = {f"1/model_sm{cc.replace('.', '')}.plan": e.plan_path for cc, e in sorted(by_cc.items())}
        first = next(iter(files)).split("/", 1)[1]
        profile = _profile(engines[0].manifest, io)
        if profile["min_batch"] and profile["min_batch"] > 1:
            warns.append(f"the {prec} plans take batches of {profile['min_batch']} or more: Triton will fail "
                         "smaller requests (rebuild with --min-batch 1 to serve single images)")
        mb = 0 if static else profile["max_batch"] or max_batch
        trt_name = f"{base}_trt_{prec}"
        warns += _target_warnings(by_cc.values(), aim)
        notes[trt_name] = _version_compatible_note(by_cc.values())
        if notes[trt_name]:
            warns.append(f"{trt_name} holds version-compatible plans: start tritonserver with "
                         "--backend-config=tensorrt,version-compatible=true (its config.pbtxt says so too)")
        models.append((trt_name, "tensorrt", files,
                       _config(pb2, trt_name, PLATFORMS["tensorrt"], dict(io, shape=profile["shape"]),
                               b.num_classes, out_name, mb, "gpu", instances, max_queue_delay_us,
                               {cc: f"model_sm{cc.replace('.', '')}.plan" for cc in sorted(by_cc)}, first,
                               dtypes=_plan_dtypes(engines[0].manifest, io["name"], out_name))))
    if ensemble:
        pre = facts.pre
        pre_name, ens_name = f"{base}_preprocess", f"{base}_ensemble"
        models.append((pre_name, "python", {"1/model.py": PREPROCESS_MODEL},
                       _preprocess_config(pb2, pre_name, max_batch, pre, instances, ort_dtypes[0])))
        models.append((ens_name, "ensemble", {"client.py": CLIENT},
                       _ensemble_config(pb2, ens_name, max_batch, pre_name, base, io["name"], out_name,
                                        b.num_classes, ort_dtypes[1])))
        check_ensemble(models[-1][3], {cfg.name: cfg for _, _, _, cfg in models})

    texts = {}
    for model_name, _, _, cfg in models:
        _model_name(model_name, "the model name")
        text = f"# Triton model config written by vanexport {__version__} from {bundle_name}\n" + \
            "".join(f"# {line}\n" for line in notes.get(model_name, [])) + text_format.MessageToString(cfg)
        if parse_model_config(text) != cfg:  # the text, read back with Triton's schema, is the message built
            raise VanexportError(f"config.pbtxt of {model_name} does not read back as the config built; nothing "
                                 "was written", "this is a bug in vanexport; please report it")
        texts[model_name] = text

    repo = Path(output)
    repo.mkdir(parents=True, exist_ok=True)
    for model_name, _, _, _ in models:
        dest = _model_dir(repo, model_name)
        if dest.exists() and not force:
            raise VanexportError(f"'{dest}' already exists", "pass --force to replace it, or another --name")
    labels = "".join(f"{label}\n" for label in facts.labels)  # one per line, each checked to be one line
    records = []
    for model_name, backend, files, cfg in models:
        step(f"writing {repo / model_name}")
        _write_model_dir(_model_dir(repo, model_name), texts[model_name], files, labels)
        records.append({"name": model_name, "backend": backend, "platform": cfg.platform or cfg.backend,
                        "path": str(repo / model_name), "max_batch_size": cfg.max_batch_size,
                        "instance_kind": "none" if backend == "ensemble" else
                        "cpu" if backend == "python" or (cpu and backend == "onnxruntime") else "gpu",
                        "files": sorted(["config.pbtxt", "labels.txt", *files]),
                        "cc_model_filenames": dict(cfg.cc_model_filenames)})
    return TritonResult(str(repo), records, "tritonclient model_config.proto (inference.ModelConfig)", warns)


def _model_name(value: str, what: str) -> str:
    """A model's name is its folder's name in the repository: a plain name (formats.fields.path_part)."""
    try:
        return path_part(value, what)
    except ValueError as e:
        raise VanexportError(str(e), "choose a --name of letters, digits, '_', '-' and '.' (Triton names a model "
                             "by its folder)") from None


def _model_dir(repo: Path, model_name: str) -> Path:
    """The model's folder: a plain name, directly inside the repository, and not a link or a file (--force
    replaces the folder: never anything elsewhere)."""
    dest = repo / _model_name(model_name, "the model name")
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()) or dest.resolve().parent != repo.resolve():
        raise VanexportError(f"'{dest}' is a link or not a folder", "remove it, or choose another --name")
    return dest


def _compute_capability(engine) -> str:
    """A plan's compute capability, from its manifest in the bundle: it names the plan's file in the model."""
    cc = engine.manifest.gpu.compute_capability
    if not isinstance(cc, str) or not re.fullmatch(r"\d{1,2}\.\d{1,2}", cc):
        raise VanexportError(f"refusing the bundle: the manifest of {engine.entry.file!r} gives the compute "
                             f"capability {str(cc)[:40]!r}, not MAJOR.MINOR", REFUSED)
    return cc
def _plan_dtypes(plan_manifest, input_name: str, output_name: str) -> tuple[str, str]:
    """The plan's input and output dtypes, from its manifest (an FP16-I/O source gives a float16 plan)."""
    by_name = {t.name: t.dtype for t in [*plan_manifest.inputs, *plan_manifest.outputs]}
    return by_name.get(input_name, "float32"), by_name.get(output_name, "float32")


def _target_warnings(engines, aim) -> list[str]:
    """One line per plan that will not load on the target Triton, saying what to do instead."""
    from .targets import plan_problem

    out = []
    for e in engines:
        problem = plan_problem(e.plan_path.name, e.manifest.tensorrt.version, e.manifest.tensorrt.version_compatible,
                               aim)
        if problem:
            out.append(f"{problem}; build the plan on the target: `vanexport trt --bundle BUNDLE` inside that "
                       "container (or with its TensorRT), then run `vanexport triton` again; or pass --target")
    return out


def _version_compatible_note(engines) -> list[str]:
    """config.pbtxt comment lines for version-compatible plans: Triton loads them only when told to."""
    from .targets import VERSION_COMPATIBLE_FLAG

    if not any(e.manifest.tensorrt.version_compatible for e in engines):
        return []
    return ["Version-compatible plans: Triton loads them only with tritonserver " + VERSION_COMPATIBLE_FLAG,
            "(tensorrt_backend README.md); their embedded lean runtime runs as host code: trust the plan first."]


def _profile(plan_manifest, io: dict) -> dict:
    """Batch range and input shape (Triton dims) from the optimisation profile in a plan's manifest."""
    inputs = [i for i in plan_manifest.inputs if i.name == io["name"]]
    profile = inputs[0].profile if inputs else None
    if not profile:
        return {"min_batch": None, "max_batch": None, "shape": list(io["shape"])}
    lo, hi = profile.min, profile.max
    # dims that differ between min and max are dynamic
    return {"min_batch": lo[0], "max_batch": hi[0], "shape": [a if a == b else "dynamic" for a, b in zip(lo, hi)]}


def _write_model_dir(dest: Path, config: str, files: dict[str, Path | str], labels: str) -> None:
    """Build the model folder beside its final place, then swap it in (a reader never sees half a model).
    `files`: path in the folder -> a file to copy, or text to write. An ensemble's version folder stays empty."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (tmp / "config.pbtxt").write_text(config)
        (tmp / "labels.txt").write_text(labels, encoding="utf-8")
        (tmp / "1").mkdir()
        for fname, src in files.items():
            if isinstance(src, str):
                (tmp / fname).write_text(src)
            else:
                shutil.copyfile(src, tmp / fname)
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))  # new and empty: ours
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
