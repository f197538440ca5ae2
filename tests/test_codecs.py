"""Codecs with real bytes: bit accounting in the results, the network carrying the encoded
sizes (per image, per packet), the MTU checked on them, fitted codecs, codec grids, and
rate-accuracy tools (BD-rate, plots against kbit per image)."""

import math
import re

import numpy as np
import pytest
from conftest import run_scenario

from dfsim import registry
from dfsim.codecs.base import PacketBytes, PacketCodec, PayloadError
from dfsim.codecs.compressors import ZstdCodec
from dfsim.errors import UserError
from dfsim.experiment.scenario import load_scenario
from dfsim.testing import synthetic_features
from dfsim.tools.cli import main
from dfsim.transport.channels import Bernoulli
from dfsim.transport.network import DATA, PARITY, Fec, Link, SideInfo, Traffic, WirePlan, simulate
from dfsim.transport.packets import PacketLayout

SCENARIO = """
name: codecs
seed: 5
model: {name: fmnist-resnet, split: add_1}
data: {n_images: 60}
encoding: {codec: [raw, zstd], bits: 8}
packets: {rows_per_packet: 4}
network: {bandwidth_mbps: 2, propagation_ms: 5, fps: 5}
channels:
  - {kind: iid, loss_rates: [0.0, 0.2]}
methods: [zeros]
trials: 1
"""


def test_wire_plan_carries_each_images_own_packet_sizes():
    payload = np.array([[800, 400, 200], [80, 40, 20]])
    side = SideInfo("first-packet", bits=64)
    plan = WirePlan.build(payload, 40, Fec(2, 1), side, 2, np.array([64, 96]))
    assert list(plan.kind) == [DATA, DATA, PARITY, DATA, PARITY]
    # group 0's parity covers data packet 0 with its side information
    assert plan.bits[0].tolist() == [800 + 320 + 64, 400 + 320, 800 + 320 + 64, 200 + 320, 520]
    assert plan.bits[1].tolist() == [80 + 320 + 96, 40 + 320, 80 + 320 + 96, 20 + 320, 340]


def test_latency_scales_with_each_images_coded_size():
    """Images far apart on a slow link: each image's latency is its own bits on the wire
    over the bandwidth plus propagation, whatever the other images' sizes."""
    rng = np.random.default_rng(0)
    payload = rng.integers(100, 5000, (6, 4)) * 8
    link = Link(bandwidth_bps=1e5, propagation_ms=3, header_bytes=40)
    tx = simulate(
        6,
        payload,
        Bernoulli(0.0),
        np.random.default_rng(1),
        link,
        traffic=Traffic(fps=0.5),
        side_bits=np.full(6, 64),
    )
    wire = payload.sum(axis=1) + 4 * 320 + 64
    assert np.allclose(tx.latency_ms, wire / 1e5 * 1e3 + 3)
    assert tx.bits_sent == wire.sum()


def test_results_account_for_the_coded_bits_and_compression_shortens_latency(tmp_path):
    rows = run_scenario(tmp_path, SCENARIO)
    by = {(r["codec"], r["loss_rate"]): r for r in rows}
    raw, zstd = by[("raw", 0.0)], by[("zstd", 0.0)]
    elements = 32 * 28 * 28
    assert raw["bits_per_image"] == elements * 8 + 64 == raw["ideal_bits_per_image"]
    assert raw["bits_per_element"] == pytest.approx(raw["bits_per_image"] / elements)
    assert raw["kbpi"] == pytest.approx(raw["bits_per_image"] / 1e3)
    assert raw["bpp"] == pytest.approx(raw["bits_per_image"] / (28 * 28))
    assert math.isnan(zstd["ideal_bits_per_image"])
    # The wire carries the coded bits plus one 40-byte header per packet.
    for r in (raw, zstd):
        assert r["wire_bits_per_image"] == round(r["bits_per_image"] + 224 * 320)
    assert zstd["bits_per_image"] < raw["bits_per_image"]
    # Lossless: the same accuracy; fewer bits: lower latency on the slow link.
    assert zstd["top1"] == raw["top1"]
    assert zstd["latency_mean_ms"] < raw["latency_mean_ms"]
    assert zstd["latency_mean_ms"] / raw["latency_mean_ms"] == pytest.approx(
        zstd["wire_bits_per_image"] / raw["wire_bits_per_image"], rel=0.05
    )
    assert zstd["encode_ms_per_tensor"] > 0 and zstd["decode_ms_per_tensor"] > 0


def test_mtu_is_checked_on_the_encoded_packets(tmp_path):
    text = SCENARIO.replace("encoding: {codec: [raw, zstd], bits: 8}", "encoding: {codec: zstd}")
    text = text.replace("rows_per_packet: 4", "rows_per_packet: 28")
    text = text.replace("fps: 5}", "fps: 5, mtu_bytes: 400}")
    (tmp_path / "s.yaml").write_text(text)
    scn = load_scenario(tmp_path / "s.yaml")  # nothing to check before encoding
    from dfsim.experiment.prepare import prepare

    with pytest.raises(UserError, match=r"^packets.rows_per_packet: 28 rows of 28 values coded "):
        prepare(scn)


def test_codec_grid_keeps_each_codecs_defaults(tmp_path):
    text = SCENARIO.replace("codec: [raw, zstd], bits: 8", "codec: [deflate, zstd], bits: [4, 8]")
    (tmp_path / "s.yaml").write_text(text)
    params = {
        (c.codec.name, c.codec.kwargs["bits"]): c.codec.kwargs
        for c in load_scenario(tmp_path / "s.yaml").configs
    }
    assert params[("deflate", 4)]["level"] == 9 and params[("zstd", 8)]["level"] == 19
    (tmp_path / "s.yaml").write_text(text.replace("bits: [4, 8]", "quality: 5"))
    with pytest.raises(
        UserError, match=r"s.yaml: encoding.quality: not a parameter of codec deflate, zstd "
    ):
        load_scenario(tmp_path / "s.yaml")


def test_zstd_dictionary_is_trained_on_training_features_and_shrinks_packets():
    lay = PacketLayout.for_shape((8, 12, 12), 4)
    train = np.maximum(synthetic_features(200, (8, 12, 12), seed=1), 0)
    test = np.maximum(synthetic_features(20, (8, 12, 12), seed=2), 0)
    plain = ZstdCodec(level=19)
    fitted = ZstdCodec(level=19, dictionary=2048)
    with pytest.raises(RuntimeError, match="fit"):
        fitted.encode(test, lay)
    fitted.fit(train, lay)
    a, b = plain.encode(test, lay), fitted.encode(test, lay)
    assert b.bits_per_image().mean() < 0.97 * a.bits_per_image().mean()
    everything = np.ones((20, lay.packets_per_tensor), bool)
    assert np.array_equal(
        plain.decode(a, everything, a.side_info)[0], fitted.decode(b, everything, b.side_info)[0]
    )


def test_a_zstd_dictionary_that_does_not_help_is_noted_in_one_line(capsys):
    """Checked on held-out training tensors: features that share structure get no note;
    incompressible noise, where a dictionary cannot shrink anything, gets one line."""
    lay = PacketLayout.for_shape((8, 12, 12), 4)
    useful = np.maximum(synthetic_features(200, (8, 12, 12), seed=1), 0)
    ZstdCodec(level=19, dictionary=2048).fit(useful, lay)
    assert capsys.readouterr().err == ""
    noise = np.random.default_rng(3).random((200, 8, 12, 12)).astype(np.float32)
    ZstdCodec(level=19, dictionary=2048).fit(noise, lay)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("dfsim: note: zstd: a 2048-byte dictionary does not shrink")


def test_scenario_with_a_fitted_codec_runs(tmp_path):
    text = SCENARIO.replace("codec: [raw, zstd], bits: 8", "codec: zstd, dictionary: 1024")
    rows = run_scenario(tmp_path, text)
    assert {r["dictionary"] for r in rows} == {1024}
    assert rows[0]["bits_per_element"] < 8


def test_packet_bytes_crc_is_zlibs():
    import zlib

    chunks = [b"", b"a", bytes(range(256)), b"feature" * 30]
    pb = PacketBytes.from_list(chunks)
    assert pb.crc.tolist() == [zlib.crc32(c) for c in chunks]
    assert [pb.payload(j) for j in range(len(chunks))] == chunks
    assert pb.sizes_bits().tolist() == [8 * len(c) for c in chunks]


class _Verbatim(PacketCodec):
    """The codes' bytes as they are; a short payload raises PayloadError."""

    def encode_packet(self, codes, side):
        return codes.astype(np.uint8).tobytes()

    def decode_packet(self, payload, rows, width, side):
        if len(payload) != rows * width:
            raise PayloadError(f"{len(payload)} bytes for {rows * width} values")
        return np.frombuffer(payload, np.uint8).reshape(rows, width)


def test_a_codec_from_outside_is_one_class_with_two_methods(tmp_path):
    registry.register("codec", "verbatim")(_Verbatim)
    try:
        from dfsim import testing

        testing.check_codec("verbatim")
        rows = run_scenario(tmp_path, SCENARIO.replace("[raw, zstd]", "[raw, verbatim]"))
        by = {(r["codec"], r["loss_rate"]): r for r in rows}
        for loss in (0.0, 0.2):
            raw, mine = by[("raw", loss)], by[("verbatim", loss)]
            assert mine["bits_per_image"] == raw["bits_per_image"]
            assert mine["top1"] == raw["top1"] and mine["mse_lost"] == raw["mse_lost"]
    finally:
        registry.unregister("codec", "verbatim")


def test_compare_reports_bd_rate_and_plot_draws_rate_accuracy(tmp_path, capsys):
    text = SCENARIO.replace("codec: [raw, zstd], bits: 8", "codec: [raw, zstd], bits: [2, 3]")
    run_scenario(tmp_path, text)
    out = tmp_path / "out"
    assert main(["compare", str(out), "--bd-rate", "--anchor", "raw"]) == 0
    table = capsys.readouterr().out
    assert "BD-rate (kbpi at equal top1) against codec raw" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("| iid | 0 |"))
    value = float(line.split("|")[-2].strip().split()[0])
    assert -60 < value < 0  # zstd needs fewer bits than raw at equal accuracy
    assert main(["compare", str(out), "--bd-rate", "--anchor", "jpeg"]) != 0
    assert "--anchor: 'jpeg' is not a codec" in capsys.readouterr().err
    assert main(["plot", str(out), "--x", "kbpi", "--by", "codec"]) == 0
    assert (out / "top1_vs_kbpi.png").stat().st_size > 0


def test_fill_packs_as_many_rows_as_the_mtu_allows(tmp_path):
    text = SCENARIO.replace("rows_per_packet: 4", "rows_per_packet: [4, fill]")
    text = text.replace("fps: 5}", "fps: 5, mtu_bytes: 400}")
    rows = run_scenario(tmp_path, text)
    import json

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    used = {
        (c["codec"], c["rows_per_packet"]): c["rows_per_packet_used"] for c in manifest["configs"]
    }
    # raw, 8 bits, 28 values a row: 40 + 28 r (+ 8 bytes of side info in the first packet)
    # <= 400 holds up to r = 12
    assert used[("raw", "fill")] == [12] and used[("raw", 4)] == [4]
    assert used[("zstd", "fill")][0] >= 12
    fill = [r for r in rows if r["rows_per_packet"] == "fill"]
    assert {r["packets_per_image"] for r in fill if r["codec"] == "raw"} == {32 * 3}
    for r in fill:
        four = next(
            x
            for x in rows
            if x["rows_per_packet"] == 4
            and x["codec"] == r["codec"]
            and x["loss_rate"] == r["loss_rate"]
        )
        assert r["wire_bits_per_image"] < four["wire_bits_per_image"]  # fewer headers


def test_rows_per_packet_is_a_number_or_fill(tmp_path):
    for value, message in (
        ("full", "packets.rows_per_packet: expected an integer or one of fill, got string 'full'"),
        ("0", "packets.rows_per_packet: 0 is out of range (must be >= 1)"),
    ):
        (tmp_path / "s.yaml").write_text(
            SCENARIO.replace("rows_per_packet: 4", f"rows_per_packet: {value}")
        )
        with pytest.raises(UserError, match=re.escape(f"s.yaml: {message}") + "$"):
            load_scenario(tmp_path / "s.yaml")


def test_pareto_front_drops_a_saturated_tail():
    from dfsim.experiment.statistics import pareto_front

    pts = [(100, 0.93), (50, 0.22), (75, 0.89), (150, 0.93), (200, 0.92)]
    assert pareto_front(pts) == [(50, 0.22), (75, 0.89), (100, 0.93)]


def test_packets_decoded_with_another_images_table_are_counted_undecodable(tmp_path):
    """With on_loss: previous, a range-coded packet decoded with the previous image's
    histogram is mostly rejected: it counts as lost, and undecodable_rate says how many."""
    text = SCENARIO.replace("[raw, zstd]", "[raw, range]").replace(
        "fps: 5}", "fps: 5, side_info: {placement: own-packet, on_loss: previous}}"
    )
    rows = run_scenario(tmp_path, text)
    by = {(r["codec"], r["loss_rate"]): r for r in rows}
    assert by[("raw", 0.2)]["undecodable_rate"] == 0.0
    assert by[("range", 0.0)]["undecodable_rate"] == 0.0
    lossy = by[("range", 0.2)]
    assert lossy["side_info_loss_rate"] > 0 and lossy["undecodable_rate"] > 0
    # the same loss pattern; the rejected packets add to what completion must fill
    assert lossy["realised_loss_rate"] == by[("raw", 0.2)]["realised_loss_rate"]
    assert lossy["mse_lost"] != by[("raw", 0.2)]["mse_lost"]


def test_side_information_larger_than_the_mtu_is_a_one_line_error(tmp_path):
    text = (
        SCENARIO.replace("[raw, zstd]", "range")
        .replace("fps: 5}", "fps: 5, mtu_bytes: 120, side_info: {placement: own-packet}}")
        .replace("rows_per_packet: 4", "rows_per_packet: 1")
    )
    (tmp_path / "s.yaml").write_text(text)
    from dfsim.experiment.prepare import prepare

    with pytest.raises(UserError, match=r"^network.side_info: the side information of an image"):
        prepare(load_scenario(tmp_path / "s.yaml"))


def test_codec_grid_lists_a_codec_without_the_parameter_once(tmp_path):
    text = SCENARIO.replace("codec: [raw, zstd], bits: 8", "codec: [raw, zstd], level: [3, 9]")
    (tmp_path / "s.yaml").write_text(text)
    configs = load_scenario(tmp_path / "s.yaml").configs
    assert [(c.codec.name, c.codec.kwargs.get("level")) for c in configs] == [
        ("raw", None),
        ("zstd", 3),
        ("zstd", 9),
    ]
    (tmp_path / "s.yaml").write_text(
        SCENARIO.replace("codec: [raw, zstd], bits: 8", "codec: [deflate, zstd], level: 15")
    )
    with pytest.raises(
        UserError, match=r"encoding.level: 15 is out of range .* \(codec deflate\)$"
    ):
        load_scenario(tmp_path / "s.yaml")


def test_a_zstd_dictionary_too_small_to_train_is_a_user_error():
    lay = PacketLayout.for_shape((8, 12, 12), 4)
    train = np.maximum(synthetic_features(50, (8, 12, 12), seed=1), 0)
    with pytest.raises(UserError, match=r"^encoding.dictionary: zstd cannot train a 10-byte"):
        ZstdCodec(dictionary=10).fit(train, lay)
