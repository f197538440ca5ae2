"""Crash-safe, resumable runs: every finished work unit is saved atomically in
``OUT/.partial/`` and a rerun of the same scenario skips the units already there.

A unit's rows are stored as JSON (floats round-trip exactly), written to a temporary
file and renamed, so a run killed at any instant (Ctrl-C or kill -9) leaves only whole
units. The directory also records a fingerprint of the resolved scenario and model
weights: a *different* scenario pointed at the same output directory is refused rather
than mixed. When the run completes, the final files are written and ``.partial/`` is
removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from dfsim.errors import UserError
from dfsim.results import atomic_write

PARTIAL = ".partial"


def fingerprint(resolved_scenario: dict, weights_id: str) -> str:
    scenario = {k: v for k, v in resolved_scenario.items() if k != "output"}
    blob = json.dumps({"scenario": scenario, "weights": weights_id}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Checkpoint:
    """Finished units of one run, in ``out/.partial``."""

    def __init__(self, out: Path, fp: str):
        self.dir = Path(out) / PARTIAL
        stamp = self.dir / "fingerprint"
        if stamp.is_file():
            if stamp.read_text().strip() != fp:
                raise UserError(
                    f"--out: {str(out)!r} holds an unfinished run of a different scenario; "
                    f"use another --out, or delete {str(self.dir)!r} to discard it"
                )
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            _atomic_text(stamp, fp)

    def _path(self, unit: tuple[int, ...]) -> Path:
        return self.dir / ("unit-" + "-".join(map(str, unit)) + ".json")

    def done(self) -> dict[tuple[int, ...], list[dict]]:
        out = {}
        for p in self.dir.glob("unit-*.json"):
            out[tuple(int(i) for i in p.stem.split("-")[1:])] = json.loads(p.read_text())
        return out

    def save(self, unit: tuple[int, ...], rows: list[dict]) -> None:
        _atomic_text(self._path(unit), json.dumps(rows))

    @staticmethod
    def finish_dir(out: Path) -> None:
        """The run's final files are written: its partial units are no longer needed."""
        shutil.rmtree(Path(out) / PARTIAL, ignore_errors=True)


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))
