import os

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def without_timing(rows):
    """Result rows minus the wall-clock column, which legitimately differs between runs."""
    return [{k: v for k, v in r.items() if k != "completion_ms_per_tensor"} for r in rows]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Fitted weights go to a fresh cache: tests never read a developer's stale entries."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DFSIM_CACHE", str(tmp_path_factory.mktemp("dfsim-cache")))
    yield
    mp.undo()
