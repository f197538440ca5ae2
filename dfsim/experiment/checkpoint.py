"""Crash-safe, resumable runs: every finished work unit is saved atomically in
``OUT/.partial/`` and a rerun of the same scenario skips the units already there.

A unit's rows are stored as JSON (floats round-trip exactly), written to a temporary
file, fsync'd and renamed, so a run killed at any instant (Ctrl-C or kill -9) leaves only
whole units. The directory also records a fingerprint of the resolved scenario and model
weights: a *different* scenario pointed at the same output directory is refused rather
than mixed. When the run completes, the final files are written and ``.partial/`` is
removed.

Every file here is sealed JSON (:func:`dfsim.cache.write_sealed_json`: the payload, then
the sha256 of the bytes before it); a unit's payload also names its unit and the
scenario's fingerprint. A unit file that fails the check (truncated, emptied,
overwritten, copied from another unit or run) is discarded with a one-line note and its
unit run again; a damaged fingerprint file discards the whole unfinished run, which then
starts over.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from dfsim.cache import discard, read_sealed_json, write_sealed_json
from dfsim.errors import UserError

PARTIAL = ".partial"


def fingerprint(resolved_scenario: dict, weights_id: str) -> str:
    scenario = {k: v for k, v in resolved_scenario.items() if k != "output"}
    blob = json.dumps({"scenario": scenario, "weights": weights_id}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def refuse_other_run(out: Path, fp: str) -> None:
    """A one-line error when ``out`` holds an unfinished run of a different scenario (its
    fingerprint, readable, not ``fp``); writes nothing."""
    stamp = Path(out) / PARTIAL / "fingerprint"
    if stamp.exists():
        stored = read_sealed_json(stamp)
        if isinstance(stored, dict) and stored.get("fingerprint") not in (None, fp):
            raise UserError(
                f"--out: {str(out)!r} holds an unfinished run of a different scenario; "
                f"use another --out, or delete {str(stamp.parent)!r} to discard it"
            )


class Checkpoint:
    """Finished units of one run, in ``out/.partial``."""

    def __init__(self, out: Path, fp: str):
        self.dir, self.fp = Path(out) / PARTIAL, fp
        stamp = self.dir / "fingerprint"
        refuse_other_run(out, fp)
        if stamp.exists():
            stored = read_sealed_json(stamp)
            if not isinstance(stored, dict) or not isinstance(stored.get("fingerprint"), str):
                n = len(list(self.dir.glob("unit-*.json")))
                shutil.rmtree(self.dir, ignore_errors=True)
                discard(
                    stamp,
                    "checkpoint fingerprint",
                    "checksum mismatch",
                    f"starting the run over (its {n} saved work units discarded too)",
                )
        if not stamp.exists():
            write_sealed_json(stamp, {"fingerprint": fp})

    def _path(self, unit: tuple[int, ...]) -> Path:
        return self.dir / ("unit-" + "-".join(map(str, unit)) + ".json")

    def done(self) -> dict[tuple[int, ...], list[dict]]:
        """The saved units' rows (damaged ones discarded, with a note)."""
        out = {}
        for p in sorted(self.dir.glob("unit-*.json")):
            stored = read_sealed_json(p)
            try:
                unit = tuple(int(i) for i in p.stem.split("-")[1:])
            except ValueError:
                unit = None
            if stored is None:
                discard(p, "checkpoint unit", "checksum mismatch")
            elif (
                not isinstance(stored, dict)
                or stored.get("unit") != list(unit or ())
                or stored.get("fingerprint") != self.fp
                or not isinstance(stored.get("rows"), list)
            ):
                discard(p, "checkpoint unit", "not this run's unit")
            else:
                out[unit] = stored["rows"]
        return out

    def save(self, unit: tuple[int, ...], rows: list[dict]) -> None:
        write_sealed_json(
            self._path(unit), {"unit": list(unit), "fingerprint": self.fp, "rows": rows}
        )

    @staticmethod
    def finish_dir(out: Path) -> None:
        """The run's final files are written: its partial units are no longer needed."""
        shutil.rmtree(Path(out) / PARTIAL, ignore_errors=True)
