from itertools import product

import numpy as np
import pytest

from dfsim.transport import fec
from dfsim.transport.channels import Bernoulli, GilbertElliott, Trace
from dfsim.transport.network import (
    CHANNEL,
    CONGESTION,
    DATA,
    DEADLINE,
    PARITY,
    SIDE,
    Arq,
    Fec,
    Jitter,
    Link,
    Network,
    SideInfo,
    Traffic,
    WirePlan,
    per_device,
    simulate,
)

# no header and no side information: data packets are exactly their payload on the wire
BARE = {"side_info": SideInfo(bits=0)}


def test_single_image_latency_is_serialisation_plus_propagation():
    payload = np.array([1000, 2000, 500])
    wire = payload + 8 * 40 + np.array([64, 0, 0])  # a 40-byte header each, side info in packet 0
    tx = simulate(
        1,
        payload,
        Bernoulli(0.0),
        np.random.default_rng(0),
        Link(bandwidth_bps=1e6, propagation_ms=7, header_bytes=40),
        side_info=SideInfo(bits=64),
    )
    assert tx.latency_ms[0] == pytest.approx(wire.sum() / 1e6 * 1e3 + 7)
    assert np.allclose(tx.arrival_s, np.cumsum(wire) / 1e6 + 0.007)
    assert tx.bits_sent == 3500 + 3 * 320 + 64


def test_batch_upload_queues_images_fifo():
    bits = np.full(10, 800)
    tx = simulate(
        4,
        bits,
        Bernoulli(0.0),
        np.random.default_rng(0),
        Link(bandwidth_bps=8e3, propagation_ms=0, header_bytes=0),
        **BARE,
    )
    # 8000 bits per image at 8 kbit/s: image i waits for i images ahead of it
    assert np.allclose(tx.latency_ms, [1000, 2000, 3000, 4000])


def test_periodic_capture_no_queueing_when_link_is_fast_enough():
    bits = np.full(10, 800)
    tx = simulate(
        5,
        bits,
        Bernoulli(0.0),
        np.random.default_rng(0),
        Link(bandwidth_bps=1e6, propagation_ms=2, header_bytes=0),
        traffic=Traffic(fps=50),
        **BARE,
    )
    assert np.allclose(tx.capture_s, np.arange(5) / 50)
    assert np.allclose(tx.latency_ms, 8 + 2)


def test_losses_are_one_stream_from_the_channel():
    ch = GilbertElliott.from_loss_burst(0.3, 4)
    tx = simulate(50, np.full(20, 100), ch, np.random.default_rng(3))
    expected = ch.stream(np.random.default_rng(3)).take(1000)
    assert np.array_equal(tx.lost, expected)


def test_wire_plan_adds_a_header_to_every_packet_and_side_info_once():
    payload = np.array([896, 896, 448])
    first = WirePlan.build(payload, 40, None, SideInfo("first-packet", bits=64))
    assert list(first.bits[0]) == [896 + 320 + 64, 896 + 320, 448 + 320]
    assert list(first.kind) == [DATA] * 3
    own = WirePlan.build(payload, 40, None, SideInfo("own-packet", bits=64))
    assert list(own.bits[0]) == [320 + 64, 896 + 320, 896 + 320, 448 + 320]
    assert list(own.kind) == [SIDE] + [DATA] * 3
    # with FEC: parity as long as the group's longest packet, side information included
    # (recovering data packet 0 recovers the side information it carries)
    coded = WirePlan.build(payload, 40, Fec(2, 1), SideInfo("first-packet", bits=64))
    assert list(coded.kind) == [DATA, DATA, PARITY, DATA, PARITY]
    assert list(coded.bits[0]) == [
        896 + 320 + 64,
        896 + 320,
        896 + 320 + 64,
        448 + 320,
        448 + 320,
    ]
    assert list(coded.group_sizes) == [2, 1]
    for side in (SideInfo("first-packet", bits=64), SideInfo("own-packet", bits=64)):
        tx = simulate(
            3,
            payload,
            Bernoulli(0.0),
            np.random.default_rng(0),
            Link(header_bytes=40),
            side_info=side,
        )
        assert tx.bits_sent == 3 * (
            payload.sum() + 320 * (3 + (side.placement == "own-packet")) + 64
        )


def test_network_send_is_simulate_with_the_side_info_bits():
    net = Network(
        Link(bandwidth_bps=2e6, jitter=Jitter("uniform", 0, 2)),
        Traffic(fps=30, arrivals="poisson", devices=2),
        deadline_ms=60,
        arq=Arq(2, 1),
        fec=Fec(4, 1),
        side_info=SideInfo("own-packet", "drop-image"),
    )
    ch = GilbertElliott.from_loss_burst(0.2, 3)
    payload = np.full(9, 2000)
    a = net.send(20, payload, 128, ch, np.random.default_rng(5), np.random.default_rng(6))
    b = simulate(
        20,
        payload,
        ch,
        np.random.default_rng(5),
        net.link,
        traffic=net.traffic,
        deadline_ms=60,
        arq=net.arq,
        fec=net.fec,
        side_info=SideInfo("own-packet", "drop-image", bits=128),
        aux_rng=np.random.default_rng(6),
    )
    assert np.array_equal(a.lost, b.lost) and np.array_equal(a.delivered_s, b.delivered_s)
    assert a.bits_sent == b.bits_sent and a.retransmissions == b.retransmissions


@pytest.mark.parametrize(
    "kwargs", [{"bandwidth_bps": 0}, {"propagation_ms": -1}, {"header_bytes": -2}]
)
def test_link_validation(kwargs):
    with pytest.raises(ValueError):
        Link(**kwargs)


# --------------------------------------------------------------------------- theory


def test_serialisation_delay_is_size_over_bandwidth_exactly():
    bits = np.array([12_000, 4_000, 8_000])
    tx = simulate(
        3,
        bits,
        Bernoulli(0.0),
        np.random.default_rng(0),
        Link(bandwidth_bps=2e6, propagation_ms=0, header_bytes=0),
        traffic=Traffic(fps=1.0),
        **BARE,
    )
    # one image per second on an idle link: each packet is due its cumulative size / bandwidth
    # after capture
    assert np.array_equal(tx.arrival_s[:3], np.cumsum(bits / 2e6))  # image 0, captured at 0: exact
    assert np.allclose(
        tx.arrival_s.reshape(3, 3) - tx.capture_s[:, None],
        np.cumsum(bits / 2e6),
        rtol=0,
        atol=1e-12,
    )


def test_md1_mean_queueing_delay():
    """Poisson arrivals of fixed-size packets on one link: M/D/1, W_q = rho D / (2 (1 - rho))."""
    bits, bw, rate = np.array([8_000]), 1e6, 75.0  # D = 8 ms, rho = 0.6
    tx = simulate(
        60_000,
        bits,
        Bernoulli(0.0),
        np.random.default_rng(1),
        Link(bandwidth_bps=bw, propagation_ms=0, header_bytes=0),
        traffic=Traffic(fps=rate, arrivals="poisson"),
        **BARE,
    )
    d = 8_000 / bw
    wait = tx.delivered_s - tx.capture_s - d
    rho = rate * d
    assert np.mean(wait) == pytest.approx(rho * d / (2 * (1 - rho)), rel=0.05)


@pytest.mark.parametrize("load", [0.8, 0.99, 1.05, 1.3])
def test_buffer_overflow_appears_exactly_when_load_exceeds_capacity(load):
    bits = np.full(10, 8_000)  # 80 kbit per image
    fps = load * 1e6 / 80_000
    link = Link(bandwidth_bps=1e6, propagation_ms=1, header_bytes=0, buffer_bytes=2 * 10_000)
    tx = simulate(
        3000, bits, Bernoulli(0.0), np.random.default_rng(0), link, traffic=Traffic(fps=fps), **BARE
    )
    congestion = tx.loss_by_cause()["congestion"]
    if load <= 1:
        assert congestion == 0.0
    else:  # in the long run the link carries 1/load of what is offered
        assert congestion == pytest.approx(1 - 1 / load, abs=0.02)
    assert np.all(tx.cause[tx.lost] == CONGESTION)


def test_fec_code_recovers_every_pattern_of_at_most_m_losses_and_none_with_more():
    rng = np.random.default_rng(0)
    k, m = 4, 2
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (112, 112, 112, 56)]
    blocks = payloads + fec.encode(payloads, m)
    for pattern in product([False, True], repeat=k + m):
        received = np.array(pattern)
        ok = fec.recoverable(received, k)
        assert ok == (np.count_nonzero(~received) <= m)
        if ok:
            got = fec.decode(
                {i: blocks[i] for i in np.flatnonzero(received)}, k, m, [len(p) for p in payloads]
            )
            assert got == payloads
        else:
            with pytest.raises(ValueError):
                fec.decode(
                    {i: blocks[i] for i in np.flatnonzero(received)},
                    k,
                    m,
                    [len(p) for p in payloads],
                )


def test_fec_in_the_network_recovers_groups_with_at_most_m_losses(tmp_path):
    k_data, k, m = 6, 3, 2  # two groups of 3 data + 2 parity per image: wire = d d d p p d d d p p
    flags = np.array(
        [
            1,
            1,
            0,
            0,
            0,
            1,
            1,
            1,
            0,
            0,  # image 0: group 0 loses 2 (ok), group 1 3
            0,
            0,
            0,
            1,
            1,
            1,
            0,
            0,
            0,
            1,
        ],
        bool,
    )  # image 1: group 0 parity, group 1 2
    np.save(tmp_path / "t.npy", flags)
    tx = simulate(
        2,
        np.full(k_data, 480),
        Trace.from_file(tmp_path / "t.npy"),
        np.random.default_rng(0),
        Link(bandwidth_bps=1e6, header_bytes=40),
        fec=Fec(k, m),
        side_info=SideInfo(bits=64),
    )
    assert tx.lost.reshape(2, 6).tolist() == [[False] * 3 + [True] * 3, [False] * 6]
    # 800 bits with the header, parity as long as its group's longest packet (group 0's
    # covers the side information riding in data packet 0); side info once per image
    assert tx.packets_sent == 20 and tx.bits_sent == 20 * 800 + 2 * (64 + m * 64)


def test_the_networks_fec_rule_is_real_decoding_for_every_loss_pattern(tmp_path):
    """Every loss pattern of a full group (4 data + 2 parity) and of a short last group
    (3 + 2), one image each, through the network; what it counts as recovered is exactly
    what zfec decodes."""
    k, m, k_data = 4, 2, 7
    rng = np.random.default_rng(1)
    payloads = [rng.integers(0, 256, 50, dtype=np.uint8).tobytes() for _ in range(k_data)]
    groups = [list(range(4)), list(range(4, 7))]
    blocks = [[payloads[j] for j in g] + fec.encode([payloads[j] for j in g], m) for g in groups]
    patterns = [list(product([True, False], repeat=len(g) + m)) for g in groups]  # True: lost
    n = len(patterns[0])
    flags = np.array([patterns[0][i] + patterns[1][i % len(patterns[1])] for i in range(n)])
    np.save(tmp_path / "t.npy", flags.reshape(-1))
    tx = simulate(
        n,
        np.full(k_data, 400),
        Trace.from_file(tmp_path / "t.npy"),
        np.random.default_rng(0),
        Link(bandwidth_bps=1e9),
        fec=Fec(k, m),
    )
    lost = tx.lost.reshape(n, k_data)
    for i in range(n):
        for g, (members, blk) in enumerate(zip(groups, blocks, strict=False)):
            pattern = np.array(patterns[g][i % len(patterns[g])])
            received = {b: blk[b] for b in np.flatnonzero(~pattern)}
            try:
                decoded = fec.decode(received, len(members), m, [50] * len(members))
            except ValueError:
                decoded = None
            if decoded is not None:
                assert decoded == [payloads[j] for j in members]
                assert not lost[i, members].any()
            else:  # not decodable: exactly the data packets the channel lost are missing
                assert lost[i, members].tolist() == pattern[: len(members)].tolist()


def test_a_group_is_decodable_at_its_k_prime_th_usable_arrival():
    inf = np.inf
    # wire: side (no group), group 0 = 3 data + 1 parity, group 1 = 1 data + 1 parity
    group = np.array([-1, 0, 0, 0, 0, 1, 1])
    times = np.array([[0.1, 3.0, 1.0, inf, 2.0, inf, inf], [0.1, 3.0, inf, inf, 2.0, inf, 5.0]])
    ok, when = fec.decodable_at(times, group, np.array([3, 1]))
    assert ok.tolist() == [[True, False], [False, True]]
    assert when.tolist() == [[3.0, inf], [inf, 5.0]]
    assert fec.recoverable_groups([3, 2], [3, 3]).tolist() == [True, False]
    assert fec.recoverable(np.array([1, 0, 1, 1], bool), 3) and not fec.recoverable(np.ones(2), 3)


def test_trace_replay_reproduces_the_trace_bit_for_bit(tmp_path):
    flags = np.random.default_rng(4).random(700) < 0.25
    np.save(tmp_path / "t.npy", flags)
    tx = simulate(
        40, np.full(20, 900), Trace.from_file(tmp_path / "t.npy"), np.random.default_rng(0)
    )
    assert np.array_equal(tx.lost, np.concatenate([flags, flags[:100]]))
    assert np.all(tx.cause[tx.lost] == CHANNEL)


def test_arq_never_delivers_after_the_deadline_and_repairs_losses():
    bits = np.full(16, 4_000 - 320)  # 4000-bit packets on the wire with the 40-byte header
    kw = {
        "n_images": 400,
        "payload_bits": bits,
        "channel": GilbertElliott.from_loss_burst(0.2, 3),
        "link": Link(bandwidth_bps=20e6, propagation_ms=5, jitter=Jitter("exponential", 1.0)),
        "traffic": Traffic(fps=30),
    }
    plain = simulate(rng=np.random.default_rng(2), deadline_ms=40, **kw)
    arq = simulate(
        rng=np.random.default_rng(2), deadline_ms=40, arq=Arq(max_retries=3, timeout_ms=2), **kw
    )
    assert arq.retransmissions > 0 and arq.lost.mean() < 0.5 * plain.lost.mean()
    deadline = np.repeat(arq.capture_s, 16) + 0.040
    assert np.all(arq.available_s[~arq.lost] <= deadline[~arq.lost])
    assert np.all(arq.latency_ms <= 40 + 1e-9)
    # a tight deadline leaves no time to retransmit
    tight = simulate(
        rng=np.random.default_rng(2), deadline_ms=12, arq=Arq(max_retries=3, timeout_ms=2), **kw
    )
    assert tight.retransmissions == 0 and (tight.cause == DEADLINE).any()


def test_arq_without_deadline_retransmits_at_most_max_retries_times():
    bits = np.full(8, 4_000)
    tx = simulate(
        200,
        bits,
        Bernoulli(0.5),
        np.random.default_rng(0),
        Link(bandwidth_bps=50e6),
        traffic=Traffic(fps=30),
        arq=Arq(max_retries=2, timeout_ms=1),
    )
    # each packet is lost on all 3 attempts with probability 1/8
    assert tx.lost.mean() == pytest.approx(0.125, abs=0.03)
    assert tx.retransmissions <= 2 * 200 * 8


def test_many_devices_share_the_uplink_and_report_separately():
    bits = np.full(10, 8_000)
    tx = simulate(
        300,
        bits,
        Bernoulli(0.1),
        np.random.default_rng(0),
        Link(bandwidth_bps=10e6),
        traffic=Traffic(fps=20, devices=3),
    )
    assert np.array_equal(tx.device, np.arange(300) % 3)
    assert np.allclose(tx.capture_s[:3], [0, 1 / 60, 2 / 60])  # evenly phased
    rows = per_device(tx, 10)
    assert [r["device"] for r in rows] == [0, 1, 2] and all(r["images"] == 100 for r in rows)
    assert np.mean([r["channel_loss"] for r in rows]) == pytest.approx(tx.lost.mean())


def test_side_info_in_its_own_packet_and_drop_image_policy(tmp_path):
    flags = np.array([1] + [0] * 4 + [0] * 5, bool)  # image 0 loses its side-info packet
    np.save(tmp_path / "t.npy", flags)
    tx = simulate(
        2,
        np.full(4, 800),
        Trace.from_file(tmp_path / "t.npy"),
        np.random.default_rng(0),
        side_info=SideInfo("own-packet", "drop-image"),
    )
    assert tx.side_info_lost.tolist() == [True, False]
    assert tx.lost.reshape(2, 4).tolist() == [[True] * 4, [False] * 4]
    assert tx.packets_sent == 10


def test_a_slow_edge_queues_images_without_moving_their_capture_times():
    tx = simulate(
        5,
        np.full(4, 8000),
        Bernoulli(0.0),
        np.random.default_rng(0),
        Link(bandwidth_bps=1e9),
        traffic=Traffic(fps=100, edge_ms=25),
    )
    assert np.allclose(tx.capture_s, np.arange(5) / 100)
    assert np.allclose(np.diff(tx.latency_ms), 15.0)  # 25 ms of edge work per 10 ms frame


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize(
    "make",
    [
        lambda: Link(header_bytes=70_000),
        lambda: Link(mtu_bytes=10),
        lambda: Link(buffer_bytes=0),
        lambda: Traffic(fps=0),
        lambda: Traffic(devices=0),
        lambda: Traffic(arrivals="bursty"),
        lambda: Traffic(arrivals="poisson"),
        lambda: SideInfo(placement="last-packet"),
        lambda: SideInfo(on_loss="ignore"),
    ],
)
def test_the_network_parameters_are_checked_against_their_declarations(make):
    with pytest.raises(ValueError):
        make()


def test_stages_import_nothing_of_the_network():
    """Transmission is a hand-off type of dfsim.stages: the stages import nothing from the
    SimPy model, not even for type checking, and the network's names still import."""
    import ast
    from pathlib import Path

    import dfsim.stages
    from dfsim.transport import network

    tree = ast.parse(Path(dfsim.stages.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "dfsim.transport.network" not in imported
    assert network.Transmission is dfsim.stages.Transmission
    assert network.CHANNEL == dfsim.stages.CHANNEL


def test_the_two_receivers_have_their_own_names():
    from dfsim.transport import network, receiver

    assert receiver.Receiver is receiver.Reassembler  # the old name, deprecated
    assert not hasattr(network, "Receiver") and network.CloudEndpoint.__name__ == "CloudEndpoint"
