"""Python files that are not importable modules (benchmark scripts, generated Triton models), loaded by path."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_file(path, name: str | None = None):
    """The module `path` defines, executed once (a fresh module each call)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark(name: str):
    """benchmarks/<name>.py as a module."""
    return load_file(ROOT / "benchmarks" / f"{name}.py")
