import os
from pathlib import Path

import numpy as np
import pytest
import torch

# one thread per test process when pytest-xdist runs several side by side
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))


def run_scenario(
    directory, text: str, name: str = "s.yaml", out: str = "out", *options: str
) -> list[dict]:
    """Write a scenario into ``directory``, run it with one worker into ``directory/out``
    (plus ``options``) and return its result rows."""
    from dfsim.experiment.results import read_results_csv
    from dfsim.tools.cli import main

    (directory / name).write_text(text)
    assert (
        main(
            [
                "run",
                str(directory / name),
                "--out",
                str(directory / out),
                "--quiet",
                "--workers",
                "1",
                *options,
            ]
        )
        == 0
    )
    return read_results_csv(directory / out / "results.csv")


def without_timing(rows):
    """Result rows minus the wall-clock columns (declared ``timing``), which legitimately
    differ between runs; empty (NaN) cells as None."""
    from dfsim.experiment.results import pipeline_metrics

    timing = {m.name for m in pipeline_metrics() if m.timing}
    # NaN (an empty cell, e.g. no ideal bits) as None, so that equal rows compare equal
    return [{k: None if v != v else v for k, v in r.items() if k not in timing} for r in rows]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Fitted weights go to a fresh cache: tests never read a developer's stale entries.
    The test processes of one run (pytest-xdist) share it, as a run's workers do: entries
    are written atomically, so each is made once and read by all."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    cache = shared / "dfsim-cache"
    cache.mkdir(exist_ok=True)
    mp.setenv("DFSIM_CACHE", str(cache))
    yield
    mp.undo()


def two_tensor_scenario(**sections) -> dict:
    """A scenario of the test model of tests/byo_model.py split after ``c2``, where two
    8x16x16 tensors (a skip connection) cross the cut: 12 sample photos, raw 8-bit values,
    4-row packets, zero-fill; ``sections`` replace the base's (the ``skip_model`` fixture
    makes the model importable)."""
    return {
        "name": "two-tensors",
        "seed": 3,
        "model": {
            "import": "byo_model:make",
            "input_size": [3, 16, 16],
            "mean": [0.5],
            "std": [0.25],
            "split": "c2",
        },
        "data": {"dataset": "sample-photos", "n_images": 12},
        "encoding": {"codec": "raw", "bits": 8},
        "packets": {"rows_per_packet": 4},
        "channels": [{"kind": "iid", "loss_rate": 0.2}],
        "methods": ["zeros"],
        "trials": 1,
        **sections,
    }


@pytest.fixture
def skip_model(monkeypatch):
    """tests/byo_model.py importable, from the repository root."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root / "tests"))
