import numpy as np
import pytest

from dfsim.channels import Bernoulli, GilbertElliott
from dfsim.network import Link, packet_bits, simulate


def test_single_image_latency_is_serialisation_plus_propagation():
    bits = np.array([1000, 2000, 500])
    tx = simulate(1, bits, Bernoulli(0.0), np.random.default_rng(0), Link(bandwidth_bps=1e6, propagation_ms=7))
    assert tx.latency_ms[0] == pytest.approx(3500 / 1e6 * 1e3 + 7)
    assert np.allclose(tx.arrival_s, np.cumsum(bits) / 1e6 + 0.007)
    assert tx.bits_sent == 3500


def test_batch_upload_queues_images_fifo():
    bits = np.full(10, 800)
    tx = simulate(4, bits, Bernoulli(0.0), np.random.default_rng(0), Link(bandwidth_bps=8e3, propagation_ms=0))
    # 8000 bits per image at 8 kbit/s: image i waits for i images ahead of it
    assert np.allclose(tx.latency_ms, [1000, 2000, 3000, 4000])


def test_periodic_capture_no_queueing_when_link_is_fast_enough():
    bits = np.full(10, 800)
    tx = simulate(5, bits, Bernoulli(0.0), np.random.default_rng(0), Link(bandwidth_bps=1e6, propagation_ms=2), fps=50)
    assert np.allclose(tx.capture_s, np.arange(5) / 50)
    assert np.allclose(tx.latency_ms, 8 + 2)


def test_losses_are_one_stream_from_the_channel():
    ch = GilbertElliott.from_loss_burst(0.3, 4)
    tx = simulate(50, np.full(20, 100), ch, np.random.default_rng(3))
    expected = ch.stream(np.random.default_rng(3)).take(1000)
    assert np.array_equal(tx.lost, expected)


def test_packet_bits_adds_header_and_side_info():
    b = packet_bits(np.array([896, 896, 448]), Link(header_bytes=40), side_info_bits=64)
    assert list(b) == [896 + 320 + 64, 896 + 320, 448 + 320]


@pytest.mark.parametrize("kwargs", [{"bandwidth_bps": 0}, {"propagation_ms": -1}, {"header_bytes": -2}])
def test_link_validation(kwargs):
    with pytest.raises(ValueError):
        Link(**kwargs)
