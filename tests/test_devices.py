"""device: cpu | cuda. Without a GPU the GPU tests are skipped; the suite passes on CPU."""

import numpy as np
import pytest
from conftest import run_scenario

from dfsim import completion, devices
from dfsim.errors import UserError

needs_gpu = pytest.mark.skipif(not devices.gpu_available(), reason="needs a CUDA GPU")

SCENARIO = """
name: gpu-check
seed: 7
data: {n_images: 200}
channels:
  - {kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [4]}
methods: [zeros, linear, {name: silrtc, max_iters: 5}, {name: halrtc, max_iters: 5}]
trials: 2
device: DEVICE
"""


def test_device_names_are_checked():
    assert devices.check("cpu") == "cpu"
    with pytest.raises(UserError, match=r"^where: expected cpu, cuda or cuda:N, got 'gpu'$"):
        devices.check("gpu", "where")
    with pytest.raises(UserError, match=r"expected cpu, cuda or cuda:N, got 3"):
        devices.check(3)
    if not devices.gpu_available():
        with pytest.raises(UserError, match=r"^device: 'cuda:1' needs a CUDA GPU, and torch "):
            devices.check("cuda:1")


@needs_gpu
def test_a_scenario_on_the_gpu_gives_the_cpu_results(tmp_path):
    """Top-1 identical, MSE on lost entries within 1e-5 relative."""
    cpu = run_scenario(tmp_path, SCENARIO.replace("DEVICE", "cpu"), "cpu.yaml", "cpu")
    gpu = run_scenario(tmp_path, SCENARIO.replace("DEVICE", "cuda"), "gpu.yaml", "gpu")
    assert len(cpu) == len(gpu)
    for a, b in zip(cpu, gpu, strict=True):
        assert (a["method"], a["trial"]) == (b["method"], b["trial"])
        assert a["top1"] == b["top1"]
        assert abs(a["mse_lost"] - b["mse_lost"]) <= 1e-5 * max(abs(a["mse_lost"]), 1e-12)


@needs_gpu
@pytest.mark.parametrize("name", ["silrtc", "halrtc"])
def test_gpu_completion_equals_cpu(name, rng):
    x = rng.standard_normal((8, 16, 12, 12)).astype(np.float32).cumsum(axis=2)
    lost = np.repeat(rng.random((8, 16, 3, 1)) < 0.3, 4, axis=2) & np.ones((1, 1, 1, 12), bool)
    damaged = np.where(lost, 0, x).astype(np.float32)
    cpu, gpu = completion.make(name, max_iters=50), completion.make(name, max_iters=50)
    gpu.device = "cuda"
    a, b = cpu.complete_batch(damaged, lost), gpu.complete_batch(damaged, lost)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
