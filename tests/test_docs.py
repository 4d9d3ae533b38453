"""The examples in README.md and docs/ run, and their links resolve.

- ```python blocks run, each file's blocks in order in one namespace, with the working directory set to a prepared
  folder (`workspace` below). ```python no-run blocks are shown only (they need TensorRT, a GPU or the network).
- ```console blocks: every `$ vanexport ...` line runs through click's CliRunner in that folder and must exit 0;
  lines without `$ ` are output, shown but not checked. A runnable console block holds only `vanexport` commands;
  anything else (`make`, `pip`, `python`, a command that is meant to fail) goes in a ```console no-run block.
- A file whose runnable blocks name the trained digits model (`van_digits`, `calib/`, `heldout/`) runs in a folder
  that has it, as a slow test; the other files run in a light folder.
- Every relative link points at an existing file inside the repository, and every #anchor at a heading.
"""
from __future__ import annotations

import re
import shlex
import shutil
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from image_folders import class_subset

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
DIGITS_NAMES = ("van_digits", "calib/", "heldout/")  # only the digits workspace has these
DIGIT_LABELS = "zero one two three four five six seven eight nine".split()
PHOTOS = ("astronaut", "chelsea", "coffee")  # scikit-image sample photos, saved as photos/<name>.png
HELDOUT_PER_CLASS = 10  # the docs show outputs on all 400 held-out images; the tests check the commands on 100
CALIB_PER_CLASS = 7  # and calibrate on 70 of the 300 (enough for no warning below 64)


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence
    lang: str
    flags: tuple[str, ...]
    text: str

    @property
    def runs(self) -> bool:
        return self.lang in ("python", "console") and "no-run" not in self.flags

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    out, lines, i = [], doc.read_text().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^ {0,3}(`{3,})\s*([\w-]*)(.*)$", lines[i])
        if not m:
            i += 1
            continue
        fence, start, body = m.group(1), i, []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body.append(lines[i])
            i += 1
        out.append(Block(doc, start + 1, m.group(2).lower(), tuple(m.group(3).split()), "\n".join(body) + "\n"))
        i += 1
    return out


def commands(block: Block) -> list[str]:
    """The `$ ` lines of a console block (a line ending in a backslash continues on the next one)."""
    out, current = [], None
    for line in block.text.splitlines():
        if current is not None:
            current += " " + line.strip()
        elif line.startswith("$ "):
            current = line[2:].strip()
        else:
            continue
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        else:
            out.append(current)
            current = None
    return out


def needs_digits(doc: Path) -> bool:
    return any(name in b.text for b in blocks(doc) if b.runs for name in DIGITS_NAMES)


def _doc_param(doc: Path):
    marks = [pytest.mark.digits] if needs_digits(doc) else []  # slow, and run last: tests/conftest.py
    return pytest.param(doc, id=str(doc.relative_to(ROOT)), marks=marks)


# ---- the folder the examples run in ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory):
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder


def make_workspace(root: Path, photos: Path, onnx_64: Path, bundle: Path, digits=None) -> Path:
    """What the examples expect to find (docs/testing.md, "The examples' folder", says how to make it):

    photos/                 three scikit-image sample photos as PNG
    engines/van_b0_64.onnx  `vanexport onnx --img-size 64` (VAN-b0, random weights, seed 0)
    van_b0_bundle.tar.gz    `vanexport bundle --model engines/van_b0_64.onnx -o van_b0_bundle.tar.gz`
    and with the digits model (`python -m vanexport.zoo.digits`):
    van_digits.pth          the trained VAN-b0 checkpoint (10 classes)
    van_digits.onnx         its FP32 ONNX at 64x64
    calib/, heldout/        300 and 400 digit images, in class subfolders 0/ .. 9/; to keep the examples quick,
                            they hold here the first CALIB_PER_CLASS and HELDOUT_PER_CLASS images of each class
                            (70 and 100 in all)
    digit_labels.txt        zero .. nine, one per line
    """
    shutil.copytree(photos, root / "photos")
    (root / "engines").mkdir()
    shutil.copyfile(onnx_64, root / "engines" / "van_b0_64.onnx")
    shutil.copyfile(bundle, root / "van_b0_bundle.tar.gz")
    if digits is not None:
        (root / "van_digits.pth").symlink_to(Path(digits.weights).resolve())
        shutil.copyfile(digits.onnx, root / "van_digits.onnx")
        class_subset(digits.calib_dir, root / "calib", CALIB_PER_CLASS, link=True)
        class_subset(digits.heldout_dir, root / "heldout", HELDOUT_PER_CLASS, link=True)
        (root / "digit_labels.txt").write_text("\n".join(DIGIT_LABELS) + "\n")
    return root


# ---- running the blocks ---------------------------------------------------------------------------------

def run_console(block: Block) -> None:
    from click.testing import CliRunner

    from vanexport.cli import cli

    for command in commands(block):
        argv = shlex.split(command, comments=True)
        assert argv and argv[0] == "vanexport", (
            f"{block.where}: `$ {command}` is not a vanexport command: put it in a ```console no-run block")
        shown = warnings.showwarning  # the CLI routes warnings to its own printer
        try:
            result = CliRunner().invoke(cli, argv[1:], prog_name="vanexport")
        finally:
            warnings.showwarning = shown
        if result.exit_code != 0:
            tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
            pytest.fail(f"{block.where}: `$ {command}` exited {result.exit_code}\n{result.output}\n{tb}")


def run_python(block: Block, namespace: dict) -> None:
    code = compile(block.text, block.where, "exec")
    try:
        exec(code, namespace)
    except Exception:
        pytest.fail(f"{block.where}: the python block raised\n{traceback.format_exc()}")


@pytest.mark.parametrize("doc", [_doc_param(d) for d in DOCS])
@pytest.mark.usefixtures("small_entropy_histograms")  # the examples must run; their figures come from benchmarks/
def test_examples_run(doc, request, tmp_path, monkeypatch, photos_dir, b0_onnx_64, b0_bundle):
    runnable = [b for b in blocks(doc) if b.runs]
    if not runnable:
        pytest.skip("no runnable examples")
    digits = request.getfixturevalue("digits") if needs_digits(doc) else None
    ws = make_workspace(tmp_path / "ws", photos_dir, b0_onnx_64, b0_bundle[0], digits)
    monkeypatch.chdir(ws)
    namespace = {"__name__": "__doc_example__"}
    for block in runnable:
        if block.lang == "python":
            run_python(block, namespace)
        else:
            run_console(block)


# ---- the form of the examples and the links -------------------------------------------------------------

@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_example_blocks_are_well_formed(doc):
    for b in blocks(doc):
        assert b.lang not in ("bash", "sh", "shell", "shell-session"), (
            f"{b.where}: shell examples go in ```console blocks, commands starting with `$ `")
        assert set(b.flags) <= {"no-run"}, f"{b.where}: unknown fence flags {b.flags}"
        if b.lang == "console":
            assert commands(b), f"{b.where}: a console block without a `$ ` command"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    out, seen, in_code = set(), {}, False
    for line in doc.read_text().splitlines():
        if re.match(r"^ {0,3}```", line):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(doc: Path) -> list[tuple[int, str]]:
    """(line, target) of every markdown link outside code."""
    out, in_code = [], False
    for i, line in enumerate(doc.read_text().splitlines(), 1):
        if re.match(r"^ {0,3}```", line):
            in_code = not in_code
            continue
        if in_code:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        out += [(i, t) for t in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)]
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_links_resolve(doc):
    problems = []
    for line, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if ROOT not in dest.parents and dest != ROOT:
            problems.append(f"line {line}: {target} points outside the repository")
        elif not dest.exists():
            problems.append(f"line {line}: {target} does not exist")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            problems.append(f"line {line}: {target}: no heading with anchor #{anchor}")
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_nothing_points_outside_the_repository():
    """Users have the repository, not the development folder beside it. (The name is split so that a grep of the
    repository for that path finds nothing here either.)"""
    beside = "shar" + "ed/"
    offenders = [f"{d.relative_to(ROOT)}:{i}" for d in DOCS
                 for i, line in enumerate(d.read_text().splitlines(), 1) if beside in line]
    assert not offenders, offenders


def test_every_public_name_is_documented():
    import vanexport

    page = (ROOT / "docs" / "python-api.md").read_text()
    missing = [name for name in vanexport.__all__ if name != "__version__" and f"`{name}`" not in page]
    assert not missing, f"docs/python-api.md does not mention {missing}"


def test_the_harness_reads_blocks_and_commands(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n```console\n$ vanexport onnx \\\n    --img-size 64   # comment\noutput\n```\n"
                   "```python no-run\nimport tensorrt\n```\n# A `code` heading\n")
    b = blocks(doc)
    assert [(x.lang, x.flags, x.runs) for x in b] == [("console", (), True), ("python", ("no-run",), False)]
    assert commands(b[0]) == ["vanexport onnx --img-size 64   # comment"]
    assert shlex.split(commands(b[0])[0], comments=True) == ["vanexport", "onnx", "--img-size", "64"]
    assert anchors(doc) == {"a-code-heading"}
