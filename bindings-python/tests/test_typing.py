"""The typing contract: the ``.pyi`` stub matches the native module (``mypy.stubtest``), and
the examples and test peers type-check under ``mypy --strict``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # mypy's cache goes to target/.mypy_cache (pyproject.toml).
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_stub_matches_the_native_module(tmp_path: Path) -> None:
    # stubtest keeps its cache in the working directory whatever the configuration says.
    r = run("mypy.stubtest", "kite_rs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_examples_type_check_strictly() -> None:
    r = run(
        "mypy",
        "--strict",
        "examples/python",
        "bindings-python/tests/peers",
        "bindings-python/bench",
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_is_typed() -> None:
    import kite_rs

    pkg = Path(kite_rs.__file__).parent
    assert (pkg / "py.typed").exists() and (pkg / "_native.pyi").exists()
    doc = (pkg / "_native.pyi").read_text()
    assert doc.count('"""') > 100, "every stub item carries a docstring"


@pytest.mark.parametrize("name", ["Kite", "Client", "Request", "RemoteFunction"])
def test_stub_classes_have_docstrings(name: str) -> None:
    import kite_rs

    assert getattr(kite_rs, name).__doc__
