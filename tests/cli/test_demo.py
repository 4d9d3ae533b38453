"""`make demo` runs minutes, so the suite does not run it; what it asks of the CLI is checked here: every
`vanexport` line of the demo target parses (flags, choices, arguments) as the CLI stands."""
import re
import shlex
from pathlib import Path

import pytest

from vanexport.cli import cli

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def demo_commands() -> list[list[str]]:
    text = MAKEFILE.read_text().replace("\\\n", " ")
    recipe = re.search(r"^demo:.*?\n((?:\t.*\n)+)", text, re.M).group(1)
    lines = [line.strip() for line in recipe.splitlines() if "$(BIN)/vanexport " in line]
    words = [line.replace("$(DEMO)", "demo").replace("$$(ls demo/heldout/7 | head -n 1)", "0007.png") for line in lines]
    return [shlex.split(w.split("$(BIN)/vanexport ", 1)[1]) for w in words]


def test_the_demo_runs_the_main_job():
    names = [args[0] for args in demo_commands()]
    assert names == ["quantize", "quantize", "bundle", "predict"]


@pytest.mark.parametrize("args", demo_commands(), ids=lambda a: " ".join(a[:3]))
def test_every_demo_command_parses(args):
    ctx = cli.commands[args[0]].make_context(args[0], args[1:])  # a UsageError for a flag or value that is wrong
    assert ctx.params
