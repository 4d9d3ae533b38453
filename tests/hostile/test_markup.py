"""Outside text is printed as it is: rich markup in a label, a file name or a message is never read as styling (a
`[/]` used to end the command, `[red]b.png` printed as `b.png`), emoji codes are not replaced, and control
characters (an ANSI escape recolours the terminal, a line break forges a line of ours) show as their escapes.

The references are the strings themselves: each must appear, character for character, in what a person reads."""
import json

import numpy as np
import pytest

from vanexport.cli.render import render_inspect, render_predict

from .conftest import craft, run_cli

MARKUP = ["[/]", "[red]b", "[bold]x[/bold]", "[link=file:///etc/passwd]y[/link]", ":thumbs_up:"]
# in a path, a '/' of a closing tag is a folder: `[/].png` is the file `].png` in the folder `[`
PATHS = ["[/]", "[red]b", "[bold]x[/bold]", ":thumbs_up:"]
ESC = "\x1b[31m"
ESC_SHOWN = "\\x1b[31m"  # what a person must see: the escape written out, not obeyed


def no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text, repr(text)


@pytest.fixture
def photos(case):
    from PIL import Image

    folder = case / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [*PATHS, ESC + "e", "line\nbreak"]:
        (folder / f"{name}.png").parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    (folder / "[/]broken.png").write_text("not an image")  # in the folder `[`
    (folder / f"{ESC}broken.png").write_text("not an image")
    return folder


@pytest.mark.slow
def test_file_names_in_predict_are_printed_as_they_are(b0_onnx_64, case, photos):
    o = run_cli(["predict", "imgs", "--model", b0_onnx_64, "--topk", "1"], case)
    assert o.code == 0, o.stderr
    shown = o.stdout.splitlines()
    for name in PATHS:
        assert f"imgs/{name}.png" in shown  # the image's own line: exactly its name
    assert f"imgs/{ESC_SHOWN}e.png" in shown and "imgs/line\\nbreak.png" in shown
    assert "warning: cannot read 'imgs/[/]broken.png' (" in o.stderr
    assert f"warning: cannot read 'imgs/{ESC_SHOWN}broken.png' (" in o.stderr
    no_raw_controls(o.stdout + o.stderr)


@pytest.mark.slow
def test_labels_in_predict_are_printed_as_they_are(b0_bundle, case, photos):
    labels = [f"{MARKUP[i % len(MARKUP)]} {i}" for i in range(1000)]
    bundle = craft(b0_bundle[0], case / "labels.tar.gz", stub_models=False,
                   files={"labels.txt": ("\n".join(labels) + "\n").encode()})
    o = run_cli(["predict", "imgs/[red]b.png", "--model", bundle, "--topk", "1000"], case)
    assert o.code == 0, o.stderr
    rows = [line for line in o.stdout.splitlines() if line.startswith("  ") and not line.startswith("  not used")]
    assert len(rows) == 1000
    for row in rows:
        index = int(row.rsplit("(", 1)[1][:-1])
        assert row.split("%  ", 1)[1] == f"{labels[index]}  ({index})"


@pytest.mark.slow
def test_inspect_prints_a_bundles_names_as_they_are(b0_bundle, case):
    source = " ".join(MARKUP)

    def mutate(m):
        m["labels"]["source"] = source

    name = f"[red]{ESC}b.tar.gz"
    craft(b0_bundle[0], case / name, mutate=mutate, stub_models=False)
    o = run_cli(["inspect", name], case)
    assert o.code == 0, o.stderr
    assert o.stdout.startswith(f"[red]{ESC_SHOWN}b.tar.gz: bundle, ")
    assert f" from {source}" in o.stdout
    no_raw_controls(o.stdout + o.stderr)


def test_error_lines_show_names_as_they_are(case):
    for name in [*PATHS, f"{ESC}gone.png", "two\nlines.png"]:
        o = run_cli(["predict", name, "--model", "m.onnx"], case)
        shown = name.replace(ESC, ESC_SHOWN).replace("\n", "\\n")
        assert o.stderr == f"error: image '{shown}' not found: pass image files or folders\n"
        assert o.code == 2


def test_a_bundle_name_in_the_progress_lines_and_the_report(b0_bundle, case):
    name = f"{ESC}[red]evil.tar.gz"
    craft(b0_bundle[0], case / name, stub_models=False)  # opening reads the model (its metadata, its output)
    o = run_cli(["unpack", name, "-o", "out/u"], case)
    assert o.code == 0, o.stderr
    assert f"• checking and unpacking {ESC_SHOWN}[red]evil.tar.gz\n" in o.stderr, o.stderr
    assert o.stdout.startswith(f"unpacked {ESC_SHOWN}[red]evil.tar.gz -> out/u: ")
    no_raw_controls(o.stdout + o.stderr)


PREDICT_RECORD = {
    "backend": {"backend": "onnxruntime-cpu", "precision": "fp32", "reason": f"reason {ESC}[/]",
                "skipped": [f"skipped [red]{ESC}"]},
    "predictions": [{"image": f"{name}.png", "top": [{"index": 7, "label": f"{name}{ESC}", "probability": 0.5}]}
                    for name in MARKUP],
}


def test_render_predict_shows_every_field_as_it_is(capsys):
    render_predict(json.loads(json.dumps(PREDICT_RECORD)))
    out = capsys.readouterr().out
    no_raw_controls(out)
    assert f"backend: onnxruntime-cpu (fp32) - reason {ESC_SHOWN}[/]\n" in out
    assert f"  not used: skipped [red]{ESC_SHOWN}\n" in out
    for name in MARKUP:
        assert f"\n{name}.png\n   50.00%  {name}{ESC_SHOWN}  (7)\n" in out


def test_render_inspect_shows_onnx_metadata_as_it_is(capsys):
    record = {"path": "[bold]m[/bold].onnx", "kind": "onnx", "bytes": 10, "sha256": "0" * 64, "notes": [f"[/]{ESC}"],
              "details": {"producer": "[red]p", "ir_version": 8, "opsets": {"ai.onnx": 17},
                          "inputs": [{"name": "[/]", "dtype": "float32", "shape": [1, 3]}], "outputs": [],
                          "parameters": 1, "weight_dtypes": {}, "nodes": 1, "op_histogram": {"[/]": 1},
                          "metadata": {"[red]key": f"[/]{ESC}", "k": {"v": "[bold]"}}}}
    render_inspect(record)
    out = capsys.readouterr().out
    no_raw_controls(out)
    for line in ("[bold]m[/bold].onnx: onnx, 0.0 MB", "  producer [red]p, IR 8", "  input '[/]' float32 1x3",
                 "  ops: [/] 1", f"  [red]key = [/]{ESC_SHOWN}", '  k = {"v": "[bold]"}', f"  note: [/]{ESC_SHOWN}"):
        assert line in out, line
