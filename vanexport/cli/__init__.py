"""The `vanexport` command line: the click app (`app`) and the renderers of its reports (`render`).

Nothing heavy is imported at module level, so `vanexport --help` stays instant.
"""
from .app import cli, main

__all__ = ["cli", "main"]
