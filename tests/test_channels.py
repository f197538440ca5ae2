"""Loss channels against theory (3-sigma bounds over >= 10^6 packets)."""

import math

import numpy as np
import pytest

from dfsim.transport.channels import Bernoulli, ChannelParameterError, GilbertElliott

N = 2_000_000


def bursts(lost: np.ndarray) -> np.ndarray:
    d = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def check_against_theory(ch: GilbertElliott, lost: np.ndarray):
    n = len(lost)
    P, r, p = ch.loss_rate, ch.r, ch.p
    lam = 1 - p - r  # second eigenvalue of the chain: the loss indicator's lag-1 correlation
    var_rate = P * (1 - P) / n * (1 + lam) / (1 - lam)
    assert abs(lost.mean() - P) <= 3 * math.sqrt(var_rate), (lost.mean(), P)
    b = bursts(lost)
    L = 1 / r
    se = math.sqrt((1 - r) / r**2 / len(b))  # burst lengths are Geometric(r)
    assert abs(b.mean() - L) <= 3 * se + 1e-12, (b.mean(), L)


@pytest.mark.parametrize(
    "loss,burst", [(0.01, 7), (0.1, 2), (0.2, 1.0), (0.3, 4), (0.3, 1.2), (0.5, 1.5), (0.45, 6)]
)
def test_gilbert_elliott_matches_theory(loss, burst):
    ch = GilbertElliott.from_loss_burst(loss, burst)
    assert ch.loss_rate == pytest.approx(loss) and ch.mean_burst_length == pytest.approx(burst)
    lost = ch.sample(N, np.random.default_rng(7))
    assert lost.dtype == bool and lost.shape == (N,)
    check_against_theory(ch, lost)


def test_state_is_kept_across_calls():
    ch = GilbertElliott.from_loss_burst(0.3, 5)
    rng = np.random.default_rng(3)
    stream = ch.stream(rng)
    sizes = rng.integers(1, 40, size=60_000)
    lost = np.concatenate([stream.take(int(s)) for s in sizes])
    assert len(lost) >= 10**6
    check_against_theory(ch, lost)


def test_iid_special_case():
    """burst = 1/(1-P) makes Gilbert-Elliott memoryless: P(lost | previous lost) = P."""
    P = 0.25
    ch = GilbertElliott.from_loss_burst(P, 1 / (1 - P))
    assert ch.p + ch.r == pytest.approx(1.0)
    lost = ch.sample(N, np.random.default_rng(11))
    cond = lost[1:][lost[:-1]].mean()
    se = math.sqrt(P * (1 - P) / lost[:-1].sum())
    assert abs(cond - P) <= 3 * se
    # and it has the same burst statistics as Bernoulli(P)
    b_iid = bursts(Bernoulli(P).sample(N, np.random.default_rng(12)))
    assert abs(bursts(lost).mean() - b_iid.mean()) <= 3 * math.sqrt(
        2 * P / (1 - P) ** 2 / len(b_iid)
    )


def test_burst_length_one_forbids_consecutive_losses():
    lost = GilbertElliott.from_loss_burst(0.3, 1).sample(200_000, np.random.default_rng(0))
    assert not np.any(lost[1:] & lost[:-1])


def test_bernoulli_rate():
    lost = Bernoulli(0.37).sample(N, np.random.default_rng(5))
    assert abs(lost.mean() - 0.37) <= 3 * math.sqrt(0.37 * 0.63 / N)


def test_general_gilbert_elliott_loss_rate():
    ch = GilbertElliott(p=0.05, r=0.2, k=0.98, h=0.3)
    lost = ch.sample(N, np.random.default_rng(9))
    pb = 0.05 / 0.25
    assert ch.loss_rate == pytest.approx((1 - pb) * 0.02 + pb * 0.7)
    assert abs(lost.mean() - ch.loss_rate) < 0.005


def test_edge_parameters():
    rng = np.random.default_rng(0)
    assert not GilbertElliott.from_loss_burst(0.0, 4).sample(10_000, rng).any()
    assert Bernoulli(1.0).sample(100, rng).all()
    assert not Bernoulli(0.0).sample(100, rng).any()
    assert GilbertElliott(p=1.0, r=0.0).sample(100, rng).all()  # absorbing Bad state


def test_same_generator_same_draws():
    ch = GilbertElliott.from_loss_burst(0.2, 3)
    a = ch.sample(10_000, np.random.default_rng(42))
    b = ch.sample(10_000, np.random.default_rng(42))
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda: GilbertElliott.from_loss_burst(0.6, 1.2),
            r"impossible with loss_rate 0.6.*>= P/\(1-P\) = 1.5",
        ),
        (
            lambda: GilbertElliott.from_loss_burst(0.3, 0.5),
            r"burst_length must be a finite number >= 1",
        ),
        (lambda: GilbertElliott.from_loss_burst(1.0, 4), r"loss_rate must be < 1"),
        (lambda: GilbertElliott.from_loss_burst(-0.1, 4), r"loss_rate must be in \[0, 1\]"),
        (lambda: GilbertElliott(p=1.2, r=0.5), r"p must be in \[0, 1\]"),
        (lambda: GilbertElliott(p=0.0, r=0.0), r"p \+ r > 0"),
        (lambda: GilbertElliott(p=0.1, r=0.5, h=2), r"h must be in \[0, 1\]"),
        (lambda: Bernoulli(1.5), r"loss_rate must be in \[0, 1\]"),
    ],
)
def test_invalid_parameters_state_the_valid_range(make, match):
    with pytest.raises(ChannelParameterError, match=match):
        make()


# --------------------------------------------------------------------------- trace replay
from dfsim.transport.channels import Trace, TraceError, read_trace  # noqa: E402


def test_trace_formats_read_the_same_flags(tmp_path):
    flags = np.array([0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0], bool)
    np.save(tmp_path / "t.npy", flags)
    (tmp_path / "t.csv").write_text(
        "# recorded on a LTE uplink\n" + ",".join(map(str, flags.astype(int))) + "\n"
    )
    (tmp_path / "t.txt").write_text("\n".join(map(str, flags.astype(int))))
    for name in ("t.npy", "t.csv", "t.txt"):
        assert np.array_equal(read_trace(tmp_path / name), flags), name
    tr = Trace.from_file(tmp_path / "t.npy")
    assert tr.loss_rate == flags.mean() and tr.mean_burst_length == 6 / 3


def test_trace_replays_bit_for_bit_and_loops(tmp_path):
    flags = np.random.default_rng(0).random(1000) < 0.2
    np.save(tmp_path / "t.npy", flags)
    tr = Trace.from_file(tmp_path / "t.npy")
    s = tr.stream(np.random.default_rng(1))
    got = np.concatenate([s.take(300), s.take(900)])  # the second call continues and wraps around
    assert np.array_equal(got, np.concatenate([flags, flags[:200]]))
    # consecutive trials by default; a fixed offset when given
    assert np.array_equal(tr.for_trial(2, 300).sample(10, None), flags[600:610])
    assert np.array_equal(tr.for_trial(3, 400).sample(5, None), flags[200:205])  # 1200 mod 1000
    fixed = Trace.from_file(tmp_path / "t.npy", trial_offset=7)
    assert np.array_equal(fixed.for_trial(2, 300).sample(4, None), flags[14:18])


@pytest.mark.parametrize(
    "content,message",
    [
        ("0 1 2", "loss flags must be 0 or 1, found '2'"),
        ("", "the loss trace is empty"),
    ],
)
def test_bad_traces_name_the_file(tmp_path, content, message):
    (tmp_path / "bad.txt").write_text(content)
    with pytest.raises(TraceError, match=message) as info:
        read_trace(tmp_path / "bad.txt")
    assert "bad.txt" in str(info.value)
