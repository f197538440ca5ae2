"""Network and error-control keys in scenarios: validation and an end-to-end run with every
strategy."""

from pathlib import Path

import pytest
from conftest import run_scenario, without_timing

from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
BASE = (
    "data: {n_images: 20}\nmethods: [zeros]\ntrials: 1\n"
    "channels: [{kind: iid, loss_rates: [0.1]}]\n"
)


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            "network: {mtu_bytes: 150}\n",
            "packets.rows_per_packet: 4 rows of 28 values at 8 bits make 160-byte packets "
            "(with the 40-byte header), "
            "over network.mtu_bytes 150; use rows_per_packet <= 3",
        ),
        (
            "network: {jitter: {distribution: uniform, low_ms: 1}}\n",
            "network.jitter.high_ms: required for the uniform jitter",
        ),
        (
            "network: {jitter: {distribution: gamma}}\n",
            "network.jitter.distribution: unknown jitter 'gamma'",
        ),
        (
            "network: {jitter: {distribution: exponential, mean_ms: 1, sd_ms: 2}}\n",
            "network.jitter.sd_ms: not a parameter of the exponential jitter "
            "(its parameters: mean_ms)",
        ),
        (
            "network: {jitter: {distribution: uniform, low_ms: 2, high_ms: 1}}\n",
            "network.jitter: high_ms: 1 is below low_ms 2",
        ),
        (
            "network: {arrivals: poisson, fps: null}\n",
            "network.arrivals: 'poisson' needs network.fps",
        ),
        ("network: {deadline_ms: 0}\n", "network.deadline_ms: 0 is out of range"),
        ("network: {buffer_bytes: -5}\n", "network.buffer_bytes: -5 is out of range"),
        (
            "network: {side_info: {on_loss: ignore}}\n",
            "network.side_info.on_loss: 'ignore' is not one of",
        ),
        (
            "error_control: {name: none, arq: {max_retries: 2}}\n",
            "error_control.name: 'none' cannot have arq or fec",
        ),
        ("error_control: [{fec: {k: 8, m: 0}}]\n", "error_control[0].fec.m: 0 is out of range"),
        (
            "error_control: [{name: arq}, {arq: {max_retries: 2}}]\n",
            "error_control: 'arq(2)' is listed twice",
        ),
        (
            "error_control: [{arq: {max_retries: 2}, label: x}, {fec: {k: 4, m: 1}, label: x}]\n",
            "strategies need distinct labels",
        ),
    ],
)
def test_bad_network_keys_are_one_line_errors(tmp_path, capsys, extra, message):
    (tmp_path / "s.yaml").write_text(BASE + extra)
    assert main(["run", str(tmp_path / "s.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


STRATEGIES = """\
seed: 4
data: {n_images: 60}
network:
  bandwidth_mbps: 20
  fps: 15                 # per device: 41 % load in all
  devices: 2
  jitter: {distribution: exponential, mean_ms: 1}
  deadline_ms: 40
  side_info: {placement: own-packet, on_loss: previous}
error_control:
  - {name: none}
  - {arq: {max_retries: 3, timeout_ms: 2}}
  - {fec: {k: 8, m: 2}, label: fec}
channels: [{kind: gilbert-elliott, loss_rates: [0.3], burst_lengths: [2]}]
methods: [zeros, linear]
trials: 2
"""


@pytest.fixture(scope="module")
def strategies(tmp_path_factory):
    d = tmp_path_factory.mktemp("strategies")
    return d, run_scenario(d, STRATEGIES, "s.yaml", "o")


def test_every_strategy_runs_and_protection_costs_bits_and_buys_packets(strategies):
    _, rows = strategies
    by = {
        ec: [r for r in rows if r["error_control"] == ec and r["method"] == "zeros"]
        for ec in ("none", "arq(3)", "fec")
    }
    assert all(len(v) == 2 for v in by.values())
    loss = {ec: sum(r["realised_loss_rate"] for r in v) / 2 for ec, v in by.items()}
    bits = {ec: v[0]["wire_bits_per_image"] for ec, v in by.items()}
    assert loss["arq(3)"] < 0.5 * loss["none"] and loss["fec"] < loss["none"]
    assert bits["fec"] > 1.2 * bits["none"] and bits["arq(3)"] > bits["none"]
    assert all(r["retransmissions_per_image"] > 0 for r in by["arq(3)"])
    assert all(
        r["latency_p99_ms"] <= 40 + 1e-9 for r in rows
    )  # the receiver never waits past the deadline
    for r in rows:
        parts = r["channel_loss_rate"] + r["congestion_loss_rate"] + r["deadline_loss_rate"]
        assert parts == pytest.approx(r["realised_loss_rate"])


def test_per_device_table_and_identical_rerun_with_two_workers(strategies):
    import csv

    d, rows = strategies
    table = list(csv.DictReader(open(d / "o" / "devices.csv")))
    assert len(table) == 3 * 1 * 2 * 2  # configs x settings x trials x devices
    assert {r["device"] for r in table} == {"0", "1"}
    assert (
        main(["run", str(d / "s.yaml"), "--out", str(d / "w2"), "--quiet", "--workers", "2"]) == 0
    )
    assert without_timing(read_results_csv(d / "w2" / "results.csv")) == without_timing(rows)
