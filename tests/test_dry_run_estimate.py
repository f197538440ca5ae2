"""``dfsim run --dry-run`` ends with an estimated wall time from a short calibration of the
scenario's own pipeline (dfsim.experiment.estimate), or one line saying why there is none."""

from __future__ import annotations

import math
import re

from dfsim.experiment import estimate
from dfsim.tools.cli import main

TINY = """\
name: t
data: {n_images: 12}
channels:
  - {kind: iid, loss_rates: [0.0, 0.3]}
methods: [zeros, linear, altec]
trials: 2
"""
LINE = re.compile(
    r"^estimated wall time: ~(\d+(?:\.\d)?) (s|min|h) with 1 worker "
    r"\(from a \d+ s calibration on this machine; actual times vary\)$"
)


def test_dry_run_prints_a_positive_finite_estimate(tmp_path, capsys, monkeypatch):
    seen = []
    real = estimate.calibrate
    monkeypatch.setattr(estimate, "calibrate", lambda *a: seen.append(real(*a)) or seen[-1])
    (tmp_path / "s.yaml").write_text(TINY)
    out = tmp_path / "out"
    assert (
        main(["run", str(tmp_path / "s.yaml"), "--out", str(out), "--dry-run", "--workers", "1"])
        == 0
    )
    last = capsys.readouterr().out.splitlines()[-1]
    assert LINE.match(last), last
    assert math.isfinite(seen[0].seconds) and seen[0].seconds > 0
    assert seen[0].workers == 1
    assert not out.exists()  # a dry run writes no results


def test_a_calibration_that_cannot_run_is_one_line(tmp_path, capsys, monkeypatch):
    def fails(*_):
        raise RuntimeError("no such thing\nsecond line")

    monkeypatch.setattr(estimate, "calibrate", fails)
    (tmp_path / "s.yaml").write_text(TINY)
    assert main(["run", str(tmp_path / "s.yaml"), "--dry-run"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert (
        last == "estimated wall time: not available (the calibration could not run: no such thing)"
    )


def test_durations_read_at_a_glance():
    assert [estimate.duration(s) for s in (0.2, 40, 200, 5400, 9000)] == [
        "1 s",
        "40 s",
        "3 min",
        "1.5 h",
        "2.5 h",
    ]


def test_no_estimate_skips_the_calibration(tmp_path, capsys, monkeypatch):
    def never(*_):
        raise AssertionError("calibrated although --no-estimate")

    monkeypatch.setattr(estimate, "calibrate", never)
    (tmp_path / "s.yaml").write_text(TINY)
    assert main(["run", str(tmp_path / "s.yaml"), "--dry-run", "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert "2 settings x 2 trials = 4 work units" in out
    assert "estimated wall time" not in out
