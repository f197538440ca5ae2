"""Error control per stream (``error_control.streams``): where several tensors cross the
cut, each one's packets can have an FEC code or an ARQ budget of their own. The network
model against theory, the setting's parsing and labels, and a run of the two-tensor test
model (tests/byo_model.py split after ``c2``)."""

from math import comb
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import two_tensor_scenario

from dfsim.errors import UserError
from dfsim.experiment.results import read_results_csv
from dfsim.tools.cli import main
from dfsim.transport.channels import Bernoulli
from dfsim.transport.error_control import parse_strategy
from dfsim.transport.network import PARITY, Arq, Fec, SideInfo, WirePlan, simulate

ROOT = Path(__file__).resolve().parents[1]
P = 0.2
N_IMAGES = 3000


def _residual_loss(p: float, k: int, m: int) -> float:
    """A data packet of a full (k, m) MDS group stays lost when it is lost and more than
    ``m`` of the group's ``k + m`` packets are: ``p P(Binomial(k + m - 1, p) >= m)``."""
    n = k + m
    return p * sum(comb(n - 1, j) * p**j * (1 - p) ** (n - 1 - j) for j in range(m, n))


def _sigma(p: float, n: int) -> float:
    return (p * (1 - p) / n) ** 0.5


def test_fec_on_one_stream_protects_that_stream_only():
    tx = simulate(
        N_IMAGES,
        np.full(16, 1000),
        Bernoulli(P),
        np.random.default_rng(5),
        fec=(None, Fec(4, 4)),
        segments=(8, 8),
    )
    lost = tx.lost.reshape(N_IMAGES, 16)
    n = N_IMAGES * 8
    assert abs(lost[:, :8].mean() - P) < 4 * _sigma(P, n)
    want = _residual_loss(P, 4, 4)
    # packets of a group are lost together: the SD is at most that of one trial per group
    assert abs(lost[:, 8:].mean() - want) < 4 * _sigma(want, N_IMAGES * 2)
    # parity only for stream 1: 2 groups of 4 parity packets, as long as the data packets
    header = 40 * 8
    assert tx.bits_sent == N_IMAGES * ((16 + 8) * (1000 + header) + 64)


def test_arq_budget_per_stream_leaves_p_to_the_retries_plus_one():
    tx = simulate(
        N_IMAGES,
        np.full(12, 800),
        Bernoulli(P),
        np.random.default_rng(6),
        arq=(Arq(1, timeout_ms=5.0), None, Arq(3, timeout_ms=20.0)),
        segments=(4, 4, 4),
    )
    lost = tx.lost.reshape(N_IMAGES, 12)
    n = N_IMAGES * 4
    for s, want in enumerate([P**2, P, P**4]):
        got = lost[:, 4 * s : 4 * s + 4].mean()
        assert abs(got - want) < 4 * _sigma(want, n) + 1e-4, (s, got, want)


def test_one_setting_for_every_stream_is_the_shared_setting():
    pb = np.full(20, 1000)
    shared = simulate(500, pb, Bernoulli(P), np.random.default_rng(1), arq=Arq(2))
    split = simulate(
        500, pb, Bernoulli(P), np.random.default_rng(1), arq=(Arq(2), Arq(2)), segments=(10, 10)
    )
    assert (shared.lost == split.lost).all()
    assert shared.retransmissions == split.retransmissions > 0
    # FEC: with a stream boundary at a multiple of k the groups are the same
    one = simulate(500, pb, Bernoulli(P), np.random.default_rng(2), fec=Fec(5, 2))
    two = simulate(
        500, pb, Bernoulli(P), np.random.default_rng(2), fec=(Fec(5, 2),) * 2, segments=(10, 10)
    )
    assert (one.lost == two.lost).all()


def test_a_streams_fec_groups_never_span_two_streams():
    plan = WirePlan.build(np.full(7, 100), 40, (Fec(4, 1), Fec(4, 1)), SideInfo(), segments=(3, 4))
    data_groups = plan.group[plan.kind != PARITY]
    assert data_groups.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert plan.group_sizes.tolist() == [3, 4]
    assert plan.stream.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="segments"):
        WirePlan.build(np.full(7, 100), 40, (None, None), SideInfo(), segments=(3, 3))


def test_per_stream_setting_parses_with_a_label_naming_each_stream():
    ec = parse_strategy({"streams": {1: {"fec": {"k": 8, "m": 4}}}}, "error_control[1]")
    assert ec.label == "s1:fec(8,4)"
    assert ec.per_stream(2) == ((None, None), (None, Fec(8, 4)))
    both = parse_strategy({"arq": {"max_retries": 1}, "streams": {0: "none"}}, "ec")
    assert both.label == "arq(1) s0:none"
    assert both.per_stream(3) == ((None, Arq(1), Arq(1)), (None, None, None))
    assert parse_strategy({"fec": {}}, "ec").per_stream(2) is None
    assert parse_strategy({"streams": {"1": "fec"}}, "ec").label == "s1:fec(8,2)"  # as YAML keys


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        ({"a": "fec"}, "error_control.streams: 'a' is not a tensor index"),
        ({1: {"label": "x"}}, "error_control.streams.1.label: not allowed"),
        ({1: {"fec": {"q": 1}}}, "error_control.streams.1.fec.q: not a parameter"),
        ({}, "error_control.streams: expected a mapping of tensor index"),
        ({0: "ldpc"}, "error_control.streams.0.name: 'ldpc' is not one of"),
    ],
)
def test_per_stream_mistakes_are_one_line_errors(streams, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as e:
        parse_strategy({"streams": streams}, "error_control")
    assert "\n" not in str(e.value)


def _scenario(error_control) -> dict:
    return two_tensor_scenario(
        name="stream-protection",
        channels=[{"kind": "iid", "loss_rate": 0.3}],
        error_control=error_control,
        trials=2,
    )


def test_a_run_protects_the_stream_it_names(tmp_path, skip_model):
    scn = tmp_path / "s.yaml"
    protect = {"fec": {"k": 4, "m": 28}}  # k + m packets: any 4 of 32 recover a group
    scn.write_text(
        yaml.safe_dump(_scenario(["none", {"streams": {0: protect}}, {"streams": {1: protect}}]))
    )
    out = tmp_path / "out"
    assert main(["run", str(scn), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    rows = read_results_csv(out / "results.csv")
    by = {}
    for r in rows:
        by.setdefault(r["error_control"], []).append(r)
    assert list(by) == ["none", "s0:fec(4,28)", "s1:fec(4,28)"]
    none, s0, s1 = (np.mean([r["realised_loss_rate"] for r in by[k]]) for k in by)
    # one stream's packets recovered (all but about never): about half of the loss is left
    assert 0.3 * none < s0 < 0.7 * none and 0.3 * none < s1 < 0.7 * none
    # the parity of one stream of two same-sized streams: 7 times its data packets; stream
    # 0's first group's parity also covers the side information riding in data packet 0
    wire = {k: by[k][0]["wire_bits_per_image"] for k in by}
    assert wire["s1:fec(4,28)"] > 3 * wire["none"]
    side = by["none"][0]["bits_per_image"] - 2 * 8 * 16 * 16 * 8
    assert wire["s0:fec(4,28)"] - wire["s1:fec(4,28)"] == 28 * side > 0
    assert by["none"][0]["kbpi_s0"] + by["none"][0]["kbpi_s1"] == pytest.approx(
        by["none"][0]["kbpi"], rel=1e-12
    )


def test_protection_of_a_stream_the_cut_lacks_is_refused(tmp_path, skip_model, capsys):
    scn = tmp_path / "s.yaml"
    scn.write_text(yaml.safe_dump(_scenario({"streams": {2: "fec"}})))
    assert main(["run", str(scn), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(
        "error_control 's2:fec(8,2)': streams.2: the cut at split 'c2' passes 2 "
        "tensors (streams 0 to 1), not a stream 2"
    )


def test_compare_best_within_is_the_apis_choice(capsys):
    import dfsim

    budgets = [270e3, 350e3, 450e3]
    assert main(
        ["compare", "results/rd-protection", "--rate", "wire_bits_per_image",
         "--best-within", ",".join(f"{b:g}" for b in budgets)]
    ) == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == [
        "channel", "loss", "method", "budget", "bits", "bits_s1", "error_control",
        "wire_bits_per_image", "top1",
    ]  # fmt: skip
    best = dfsim.load(ROOT / "results" / "rd-protection").best_within(
        budgets, rate="wire_bits_per_image"
    )
    assert len(lines) == 2 + len(best) == 2 + 2 * len(budgets)
    summary = dfsim.load(ROOT / "results" / "rd-protection").summary
    for line, row in zip(lines[2:], best.itertuples(), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[4:7] == [str(row.bits), str(row.bits_s1), row.error_control]
        assert row.wire_bits_per_image <= row.budget
        same = summary[
            (summary.loss_rate == row.loss_rate) & (summary.wire_bits_per_image_mean <= row.budget)
        ]
        assert row.top1_mean == same.top1_mean.max()


def test_rate_columns_include_each_streams_share():
    from dfsim.experiment.statistics import is_rate_column

    assert all(is_rate_column(c) for c in ("kbpi", "wire_bits_per_image", "kbpi_s0", "kbpi_s12"))
    assert not any(is_rate_column(c) for c in ("bits", "kbpi_s", "kbpi_sx", "top1"))
    assert main(["compare", "results/rd-allocation", "--bd-rate", "--rate", "top1"]) == 2
    assert (
        main(["compare", "results/rd-allocation", "--best-within", "1e9", "--rate", "kbpi_s1"]) == 0
    )


def test_plot_on_the_wire_rate_draws_each_configs_mean_over_trials():
    import dfsim

    r = dfsim.load(ROOT / "results" / "rd-protection")
    fig = r.plot(x="wire_bits_per_image", by="error_control,bits", panels="loss_rate")
    xs = sorted({round(float(v), 6) for ax in fig.axes for ln in ax.lines for v in ln.get_xdata()})
    want = sorted({round(v / 1e3, 6) for v in r.summary.wire_bits_per_image_mean})
    assert xs == want  # ARQ's configs: their trials' wire bits differ, one point each
    assert fig.axes[0].get_xlabel() == "kbit on the wire per image"
    fig = r.plot(x="kbpi_s1", by="error_control,bits", panels="loss_rate")
    assert fig.axes[0].get_xlabel() == "kbit per image, stream 1"
    with pytest.raises(UserError, match=r"^x: 'kbpi_sx' is not an axis \(one of loss_rate, "):
        r.plot(x="kbpi_sx")
    with pytest.raises(UserError, match=r"^x: 'kbpi_s2' has no values in these results$"):
        r.plot(x="kbpi_s2")


def test_a_streams_rate_axis_keeps_the_other_streams_bits_apart():
    import dfsim

    r = dfsim.load(ROOT / "results" / "rd-allocation")
    fig = r.plot(x="kbpi_s1", panels="loss_rate", methods=["altec"])
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert all(any(t.endswith(f" bits {b}") for t in labels) for b in (2, 3, 4, 6, 8))
    xs = {round(float(v), 3) for ln in fig.axes[0].lines for v in ln.get_xdata()}
    assert len(xs) == 5  # stream 1's five rates: the points
    fig = r.plot(x="kbpi_s0", panels="loss_rate", methods=["altec"])
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert all(any(t.endswith(f"bits s1 {b}") for t in labels) for b in (2, 3, 4, 6, 8))


def test_a_run_that_evicts_prepared_configs_gives_the_same_rows(tmp_path, skip_model, monkeypatch):
    """With room for one config's decoded tensors, a process keeps only the last config it
    used and prepares an evicted one again when its units run: the rows are the same."""
    from dfsim.experiment import executors

    scn = _scenario(["none", {"streams": {1: {"fec": {"k": 4, "m": 2}}}}])
    scn["encoding"]["bits"] = [4, 8]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scn))

    def run(out, workers):
        argv = ["run", str(path), "--out", str(tmp_path / out), "--quiet", "--workers", workers]
        assert main(argv) == 0
        return read_results_csv(tmp_path / out / "results.csv")

    held = run("held", "1")
    calls = []
    real = executors.prepare
    monkeypatch.setattr(executors, "HELD_BYTES", 1)
    monkeypatch.setattr(executors, "prepare", lambda s, k: calls.append(k) or real(s, k))
    evicting = run("evicting", "1")
    assert calls[:4] == [0, 1, 2, 3]  # prepared up front, keeping only the last
    assert calls[4:] == [0, 1, 2, 3]  # then again, one by one, as their units run
    timing = {c for c in held[0] if c.endswith("_ms_per_tensor")}

    def values(rows):  # NaN (top-1 of the unlabelled photos) compared as text
        return [{k: repr(v) for k, v in r.items() if k not in timing} for r in rows]

    assert values(evicting) == values(held)


def test_a_round_of_one_streams_packets_starts_only_that_streams_nack_timer():
    import simpy

    from dfsim.transport.network import CloudEndpoint

    plan = WirePlan.build(np.full(6, 100), 40, None, SideInfo(), segments=(3, 3))
    arq = (Arq(3, timeout_ms=5.0), Arq(1, timeout_ms=50.0))
    end = CloudEndpoint(simpy.Environment(), plan, np.zeros(1), np.inf, arq, 0.005)
    timers = []
    end.nack_after = lambda i, when, t: timers.append((round(when, 6), t))
    end.env.process = lambda p: None
    end.round_due(0, 1.0, np.arange(6))  # the first round: both streams
    end.round_due(0, 2.0, np.array([0, 2]))  # a retransmission of stream 0's packets only
    assert timers == [(1.005, 0.005), (1.05, 0.05), (2.005, 0.005)]
    assert end.retries.tolist() == [3, 3, 3, 1, 1, 1]


def test_best_within_says_where_a_setting_has_nothing_within_the_budget():
    import math

    import dfsim
    from dfsim.experiment.statistics import best_within, best_within_table

    r = dfsim.load(ROOT / "results" / "rd-protection")
    summary = r.summary.to_dict("records")
    # without loss 0.3's two cheapest configs, 280 kbit affords nothing there
    summary = [
        s for s in summary if not (s["loss_rate"] == 0.3 and s["wire_bits_per_image_mean"] < 290e3)
    ]
    found = best_within(summary, r._schema, "top1", "wire_bits_per_image", [280e3])
    by = {f["loss_rate"]: f for f in found}
    assert by[0.1]["note"] == "" and by[0.1]["error_control"] == "none"
    assert math.isnan(by[0.3]["top1_mean"]) and by[0.3]["bits"] is None
    assert by[0.3]["note"] == "none within the budget (the cheapest: 294016)"
    table = best_within_table(found, "top1", "wire_bits_per_image", r._schema.metric("top1"))
    assert table.splitlines()[-1].endswith("| - | none within the budget (the cheapest: 294016) |")
