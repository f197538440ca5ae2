"""The extension recipes of docs/extending.md, tested from outside the package: a completion
method, a loss channel, a codec and a task defined here, registered, checked with
dfsim.testing and run in a scenario that names all of them; then the same code as a
plugin file (``plugins:``) run with two worker processes. A model and a dataset likewise.
"""

import inspect
import json
import math
import sys
import textwrap
from contextlib import contextmanager
from typing import Annotated

import numpy as np
import pytest
import torch
from conftest import run_scenario, without_timing
from torch import nn

from dfsim import registry, testing
from dfsim.completion.base import CompletionMethod
from dfsim.data.datasets import UNLABELLED, ImageSet
from dfsim.errors import UserError
from dfsim.experiment.results import read_results_csv
from dfsim.models.generic import GraphSplitModel
from dfsim.registry import Range
from dfsim.stages import Encoded, Metric
from dfsim.tools.cli import main
from dfsim.transport.channels import LossChannel, LossStream
from dfsim.transport.packets import depacketize, packetize


# --------------------------------------------------------------------------- the toys
class ChannelMeanFill(CompletionMethod):
    """Each lost entry becomes ``shrink`` x the mean of its channel's received entries."""

    def __init__(self, shrink: Annotated[float, Range(0, 1)] = 1.0):
        self.shrink = shrink

    def _fill(self, tensor, lost, layout):
        received = ~lost
        counts = received.sum(axis=(1, 2))
        sums = np.where(received, tensor, 0).sum(axis=(1, 2), dtype=np.float64)
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        return np.broadcast_to(
            (self.shrink * means).astype(np.float32)[:, None, None], tensor.shape
        )


class PeriodicStream(LossStream):
    def __init__(self, period, burst):
        self.period, self.burst, self.pos = period, burst, 0

    def take(self, n):
        idx = self.pos + np.arange(n)
        self.pos += n
        return idx % self.period < self.burst


class PeriodicLoss(LossChannel):
    """Loses ``burst`` consecutive packets out of every ``period`` (no randomness)."""

    def __init__(self, period: Annotated[int, Range(2)], burst: Annotated[int, Range(1)] = 1):
        if burst >= period:
            raise ValueError(f"burst must be < period, got burst {burst}, period {period}")
        self.period, self.burst = period, burst

    @property
    def loss_rate(self):
        return self.burst / self.period

    @property
    def mean_burst_length(self):
        return float(self.burst)

    def stream(self, rng):
        return PeriodicStream(self.period, self.burst)

    def __repr__(self):
        return f"PeriodicLoss(period={self.period}, burst={self.burst})"


class Int16Codec:
    """Values as 16-bit fixed point: each tensor scaled by ``headroom`` x its peak
    magnitude (one float32 of side information)."""

    side_info_bits = 32

    def __init__(self, headroom: Annotated[float, Range(1, 1000)] = 1.0):
        self.headroom = headroom

    def encode(self, features, layout):
        x = np.asarray(features, np.float32)
        peak = np.abs(x.reshape(len(x), -1)).max(axis=1) * np.float32(self.headroom)
        scale = (peak / np.float32(32767)).astype(np.float32)
        inv = np.divide(1, scale, out=np.zeros_like(scale), where=scale > 0)
        codes = np.clip(np.rint(x * inv[:, None, None, None]), -32767, 32767).astype(np.int16)
        return Encoded(
            len(x),
            {"scale": scale},
            self.side_info_bits,
            layout.packet_values() * 16,
            (packetize(codes, layout), layout),
        )

    def decode(self, encoded, received, side_info):
        packets, layout = encoded.payloads
        codes, lost = depacketize(
            packets.subset(np.asarray(received).reshape(-1)), encoded.n_images, layout
        )
        values = codes.astype(np.float32) * side_info["scale"][:, None, None, None]
        values[lost] = 0.0
        return values, lost

    def max_payload_bits(self, rows, width):
        return rows * width * 16

    def describe_values(self):
        return "as 16-bit fixed point"


class TopTwo:
    """Predictions are the two highest-scoring classes."""

    metrics = (
        Metric("top2", "top-2 accuracy", "%", higher_is_better=True, scale=100.0),
        Metric(
            "top2_agreement",
            "top-2 agreement with the loss-free model",
            "%",
            higher_is_better=True,
            scale=100.0,
        ),
    )
    primary = "top2"
    label_free = "top2_agreement"

    def predict(self, outputs):
        return np.argsort(-np.asarray(outputs), axis=1, kind="stable")[:, :2]

    def evaluate(self, predictions, reference, targets):
        known = targets != -1  # dfsim.data.datasets.UNLABELLED
        hit = (predictions == targets[:, None]).any(axis=1)
        same = (np.sort(predictions, axis=1) == np.sort(reference, axis=1)).all(axis=1)
        return {
            "top2": float(hit[known].mean()) if known.any() else math.nan,
            "top2_agreement": float(same.mean()),
        }


TOYS = [
    ("completion", "mean-fill", ChannelMeanFill),
    ("channel", "periodic", PeriodicLoss),
    ("codec", "int16", Int16Codec),
    ("task", "top2", TopTwo),
]
TOY_CODE = [PeriodicStream, ChannelMeanFill, PeriodicLoss, Int16Codec, TopTwo]
PLUGIN_HEADER = """\
import math
from typing import Annotated

import numpy as np

from dfsim.transport.channels import LossChannel, LossStream
from dfsim.completion.base import CompletionMethod
from dfsim.transport.packets import depacketize, packetize
from dfsim.registry import Range, register
from dfsim.stages import Encoded, Metric
"""


@contextmanager
def registered(toys):
    """Register ``toys`` (kind, name, object) for the duration; always unregister them."""
    try:
        for kind, name, obj in toys:
            registry.register(kind, name)(obj)
        yield
    finally:
        for kind, name, _ in toys:
            registry.unregister(kind, name)


SCENARIO = """\
name: toys
seed: 3
data: {n_images: 40}
trials: 1
task: top2
encoding: {codec: int16, headroom: 2.0}
channels:
  - {kind: iid, loss_rate: 0.0}
  - {kind: periodic, periods: [4, 7], burst: 2}
methods: [zeros, mean-fill, {name: mean-fill, shrink: 0.5}]
"""


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """A cache of this module's own: cached predictions of another task would break the
    toy task's runs (see test_cached_predictions_of_another_task_are_not_reused)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DFSIM_CACHE", str(tmp_path_factory.mktemp("toy-cache")))
        yield


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The scenario with the toys registered from this file, one worker: (directory, rows)."""
    d = tmp_path_factory.mktemp("toys")
    with registered(TOYS):
        rows = run_scenario(d, SCENARIO, "toys.yaml")
    return d, rows


# --------------------------------------------------------------------------- tests
def test_toys_pass_the_conformance_checks():
    testing.check_completion_method(ChannelMeanFill)
    testing.check_completion_method(lambda: ChannelMeanFill(shrink=0.5))
    for period, burst in ((2, 1), (5, 2), (7, 6)):
        testing.check_channel(PeriodicLoss(period, burst), np.random.default_rng(0))
    testing.check_codec(Int16Codec())
    testing.check_codec(Int16Codec(headroom=3.0), tolerance=1e-4, exact_constants=False)
    rng = np.random.default_rng(0)
    testing.check_task(TopTwo(), rng.standard_normal((64, 10)), np.arange(64) % 10)


def test_toy_parameters_are_validated_like_built_in_ones(tmp_path):
    with registered(TOYS):
        with pytest.raises(Exception, match=r"methods.shrink: 2.0 is out of range"):
            registry.build("completion", "mean-fill", "methods", shrink=2.0)
        with pytest.raises(Exception, match=r"burst must be < period"):
            registry.build("channel", "periodic", "channels[0]", period=3, burst=3)
        with pytest.raises(Exception, match=r"encoding.headroom: 0.5 is out of range"):
            registry.build("codec", "int16", "encoding", headroom=0.5)


def test_scenario_naming_every_toy(toy_run):
    d, rows = toy_run
    assert len(rows) == 3 * 3
    assert {"top2", "top2_agreement"} <= set(rows[0]) and "top1" not in rows[0]
    assert {r["channel"] for r in rows} == {"iid", "periodic"}
    assert {r["method"] for r in rows} == {"zeros", "mean-fill", "mean-fill(shrink=0.5)"}
    assert {(r["codec"], r["headroom"]) for r in rows} == {("int16", 2.0)}
    manifest = json.loads((d / "out" / "manifest.json").read_text())
    assert manifest["task"] == "top2"
    reference = manifest["reference"]
    assert reference["clean_top2"] > 0.8 and reference["clean_top2_agreement"] == 1.0
    for r in rows:
        assert 0.0 <= r["top2"] <= 1.0 and 0.0 <= r["top2_agreement"] <= 1.0
        if r["channel"] == "iid":  # loss-free: exactly the split model's reference
            assert r["loss_rate"] == 0.0 and r["realised_loss_rate"] == 0.0
            assert r["top2_agreement"] == 1.0 and r["top2"] == reference["quantized_top2"]
            assert r["mse_lost"] == 0.0
        else:  # the channel's own parameters make the loss rate and burst length columns
            period = round(2 / r["loss_rate"])
            assert period in (4, 7) and r["burst_length"] == 2.0
            total = r["n_images"] * r["packets_per_image"]
            assert abs(r["realised_loss_rate"] - 2 / period) <= 2 / total
            assert r["mse_lost"] > 0
    lossy = {(r["loss_rate"], r["method"]): r for r in rows if r["channel"] == "periodic"}
    # row-major packets, 2 lost in 4: with a multiple of 4 channels whole channels are lost,
    # and a channel without received entries is filled with 0 like zero-fill
    assert lossy[2 / 4, "mean-fill"]["mse_lost"] <= lossy[2 / 4, "zeros"]["mse_lost"]
    assert lossy[2 / 7, "mean-fill"]["mse_lost"] < lossy[2 / 7, "zeros"]["mse_lost"]


def _plugin_source() -> str:
    body = "\n\n".join(textwrap.dedent(inspect.getsource(obj)) for obj in TOY_CODE)
    regs = "\n".join(f"register({kind!r}, {name!r})({obj.__name__})" for kind, name, obj in TOYS)
    return f"{PLUGIN_HEADER}\n\n{body}\n\n{regs}\n"


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "my_toys.py"
    path.write_text(_plugin_source())
    yield path
    for kind, name, _ in TOYS:  # what the plugin registered in this process
        registry.unregister(kind, name)
    sys.modules.pop("dfsim_plugin_my_toys", None)


def test_the_same_toys_as_a_plugin_with_two_workers(toy_run, plugin_file, tmp_path):
    _, rows = toy_run
    scenario = tmp_path / "plugged.yaml"
    scenario.write_text(f"plugins: [{str(plugin_file)!r}]\n" + SCENARIO)
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--workers", "2"]) == 0
    plugged = read_results_csv(out / "results.csv")
    assert without_timing(plugged) == without_timing(rows)


def test_a_plugin_that_fails_to_import_is_a_user_error(tmp_path):
    bad = tmp_path / "broken_toys.py"
    bad.write_text("raise RuntimeError('boom')\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"plugins: [{str(bad)!r}]\n" + SCENARIO)
    from dfsim.experiment.scenario import load_scenario

    with pytest.raises(UserError, match=r"plugins\[0\]: cannot import .*RuntimeError: boom"):
        load_scenario(scenario)


# --------------------------------------------------------------------------- model, dataset
class TinyNet(nn.Module):
    """conv -> conv with a skip over it -> strided conv -> 4 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a) + a)
        return self.fc(torch.relu(self.c3(b)).mean(dim=(2, 3)))


def tiny_net(width: Annotated[int, Range(8, 64)] = 16) -> GraphSplitModel:
    """A registered model: a factory whose parameters are the scenario's ``model`` keys."""
    return GraphSplitModel(
        "tiny-net", TinyNet(), (1, width, width), default_split="c2", weights_id="tiny-net-seed0"
    )


class Stripes:
    """Synthetic labelled images: stripes of one of 4 orientations/frequencies plus noise."""

    def __init__(self, n: Annotated[int, Range(1)] = 64, seed: int = 0):
        self.n, self.seed = n, seed

    def _images(self, input_shape, n, seed):
        rng = np.random.default_rng(seed)
        c, h, w = input_shape
        labels = rng.integers(0, 4, n)
        yy, xx = np.mgrid[0:h, 0:w]
        waves = [np.sin(xx / 2), np.sin(yy / 2), np.sin((xx + yy) / 3), np.sin(xx / 5)]
        img = np.stack([waves[k] for k in labels])[:, None] * 100 + 128
        img = img + rng.normal(0, 20, img.shape)
        images = np.clip(np.repeat(img, c, axis=1), 0, 255).astype(np.uint8)
        labels[::9] = UNLABELLED
        return ImageSet(images, labels, "stripes")

    def load(self, input_shape):
        return self._images(input_shape, self.n, self.seed)

    def training_images(self, input_shape, n):
        return self._images(input_shape, n, self.seed + 1)

    def training_id(self):
        return f"stripes/seed={self.seed + 1}"


def test_own_model_and_dataset(tmp_path):
    testing.check_split_model(tiny_net(16))
    with registered([("model", "tiny-net", tiny_net), ("dataset", "stripes", Stripes)]):
        rows = run_scenario(
            tmp_path,
            """\
data: {dataset: stripes, n: 30, n_images: 30}
model: {name: tiny-net, split: c2}
trials: 1
channels: [{kind: iid, loss_rates: [0.0, 0.3]}]
methods: [zeros, linear, {name: altec, fit_images: 40}]
""",
        )
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"] == {
        "name": "tiny-net",
        "weights_sha256_16": "tiny-net-seed0",
        "split": "c2",
    }
    assert len(manifest["configs"][0]["feature_shape"]) == 2  # the cut crosses the skip
    assert len(rows) == 2 * 3 and {r["split"] for r in rows} == {"c2"}
    for r in rows:
        if r["loss_rate"] == 0.0:
            assert r["agreement"] == 1.0 and r["top1"] == manifest["reference"]["quantized_top1"]
        else:
            assert r["realised_loss_rate"] > 0.1 and r["mse_lost"] > 0


def test_own_model_parameters_are_scenario_keys():
    from dfsim.experiment.scenario import parse_scenario

    with registered([("model", "tiny-net", tiny_net)]):
        scn = parse_scenario(
            {
                "model": {"name": "tiny-net", "width": 12},
                "channels": [{"kind": "iid", "loss_rate": 0.1}],
                "methods": ["zeros"],
            }
        )
        assert scn.model.build().input_shape == (1, 12, 12)


def test_cached_predictions_of_another_task_are_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("DFSIM_CACHE", str(tmp_path / "cache"))
    classification = (
        "data: {n_images: 40}\ntrials: 1\n"
        "channels: [{kind: iid, loss_rate: 0.1}]\nmethods: [zeros]\n"
    )
    run_scenario(tmp_path, classification, "classification.yaml", "first")
    with registered(TOYS):
        rows = run_scenario(tmp_path, SCENARIO, "toys.yaml", "second")
    assert {"top2", "top2_agreement"} <= set(rows[0])
