"""Kernels in numba's on-disk cache are recompiled when a kernel they call, in another
module of their wing, changes (numba alone stamps a cache with the caller's file only)."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

CALLER = """
from {njit_from} import njit
from pkg.wing.callee import offset


@njit(cache=True)
def shifted(x):
    return x + offset()
"""
CALLEE = """
from {njit_from} import njit


@njit(cache=True)
def offset():
    return {value}
"""


def run_twice(tmp_path, njit_from: str) -> tuple[int, int]:
    """``shifted(1)`` in a fresh process, then again after the callee's module changed."""
    wing = tmp_path / njit_from.replace(".", "_") / "pkg" / "wing"
    wing.mkdir(parents=True)
    (wing.parent / "__init__.py").write_text("")
    (wing / "__init__.py").write_text("")
    (wing / "caller.py").write_text(CALLER.format(njit_from=njit_from))
    seen = []
    for value in (10, 20):
        (wing / "callee.py").write_text(
            textwrap.dedent(CALLEE.format(njit_from=njit_from, value=value))
        )
        out = subprocess.run(
            [sys.executable, "-c", "from pkg.wing.caller import shifted; print(shifted(1))"],
            cwd=wing.parent.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        seen.append(int(out.stdout))
    return seen[0], seen[1]


def test_a_change_to_a_called_kernel_recompiles_its_callers(tmp_path):
    assert run_twice(tmp_path, "dfsim.kernels") == (11, 21)


def test_numba_alone_would_keep_the_stale_callee(tmp_path):
    # the reason dfsim.kernels exists: with numba's own stamp the caller's cache is reused
    assert run_twice(tmp_path, "numba") == (11, 11)
