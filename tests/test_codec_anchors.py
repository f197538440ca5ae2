"""Anchors (lossless image codecs and byte compressors, for comparisons), feature
statistics, and the codec benchmark's harness on a tiny configuration."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from dfsim.codecs import anchors
from dfsim.codecs.quantizer import quantize
from dfsim.codecs.statistics import (
    SIMILARITY_KEYS,
    entropy,
    feature_statistics,
    near_top_share,
    nonzero_rate,
    similarity_table,
    top_values,
)
from dfsim.codecs.tiling import tile


def feature_like_codes(bits: int = 8, shape=(16, 14, 14), seed: int = 0) -> np.ndarray:
    """Quantized post-ReLU-like features: smooth fields, half of them cut to zero."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    for axis in (2, 3):
        x = (x + np.roll(x, 1, axis=axis) + np.roll(x, -1, axis=axis)) / 3
    return quantize(np.maximum(x, 0), bits).codes[0]


IMAGE_ANCHORS = list(anchors.image_anchors())


@pytest.mark.parametrize("name", IMAGE_ANCHORS)
@pytest.mark.parametrize("bits", [8, 12])
def test_image_anchor_round_trips_a_tiled_feature_image(name, bits):
    a = anchors.image_anchors()[name]
    if a.available():
        pytest.skip(a.available())
    image = tile(feature_like_codes(bits))
    assert image.shape == (56, 56)  # 16 channels: 4 x 4 tiles of 14 x 14
    data = a.encode(image, bits)  # checks the round trip itself
    assert len(data) > 0
    if name == "hevc":  # the counted stream is HEVC Annex B; the check decodes the HEIF file
        assert data.startswith(b"\x00\x00\x00\x01")
        heif = a.heif(image, bits)
        assert anchors.hevc_config(heif) == {
            "chroma_format": 0,
            "bit_depth": 8 if bits == 8 else 12,
        }
        assert len(data) < len(heif)  # the container is left out
        assert np.array_equal(a.decode(heif), image)
    else:
        back = a.decode(data)
        assert back.dtype == image.dtype and np.array_equal(back, image)
    assert anchors.tiled_bits(a, feature_like_codes(bits), bits) == 8 * len(data)


def test_hevc_refuses_more_than_12_bits():
    a = anchors.Hevc()
    if a.available():
        pytest.skip(a.available())
    assert not a.supports(16)
    with pytest.raises(anchors.AnchorUnavailable, match="at most 12"):
        a.encode(tile(feature_like_codes(16)), 16)


def test_an_anchor_whose_round_trip_differs_raises():
    class Broken(anchors.Png):
        def _decode_check(self, data):
            out = super()._decode_check(data)
            out[0, 0] ^= 1
            return out

    with pytest.raises(anchors.LosslessError):
        Broken().encode(tile(feature_like_codes()))


def test_image_anchors_check_their_input():
    with pytest.raises(ValueError, match="2-D"):
        anchors.Png().encode(feature_like_codes())
    with pytest.raises(ValueError, match="exceed 4 bits"):
        anchors.Png().encode(np.full((4, 4), 200, np.uint16), 4)


@pytest.mark.parametrize("name", list(anchors.byte_compressors()))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_byte_compressors_round_trip(name, dtype):
    c = anchors.anchor(name)
    x = feature_like_codes(8 if dtype == np.uint8 else 12).astype(dtype)
    data = c.encode(x)
    assert 0 < len(data) < x.nbytes
    back = c.decode(data, x.shape, dtype)
    assert back.dtype == dtype and np.array_equal(back, x)


def test_unknown_anchor_is_refused():
    with pytest.raises(ValueError, match="unknown anchor 'webp'"):
        anchors.anchor("webp")


# --------------------------------------------------------------------------- statistics
def test_nonzero_rate():
    assert nonzero_rate(np.array([0.0, 1.5, 0.0, -2.0])) == 0.5
    assert nonzero_rate(np.zeros((2, 3))) == 0.0
    assert nonzero_rate(np.ones(7, np.uint8)) == 1.0


def test_entropy_of_uniform_and_constant_codes():
    assert entropy(np.arange(256, dtype=np.uint8)) == pytest.approx(8.0)
    assert entropy(np.tile(np.arange(4, dtype=np.uint8), 10)) == pytest.approx(2.0)
    assert entropy(np.full(10, 7, np.uint8)) == 0.0
    p = np.array([0.5, 0.25, 0.25])  # 0 0 1 2 -> 1.5 bits
    assert entropy(np.array([0, 0, 1, 2], np.uint16)) == pytest.approx(-(p * np.log2(p)).sum())


def test_top_values_most_frequent_first_ties_smaller_first():
    codes = np.array([5, 5, 5, 9, 9, 1, 1, 3], np.uint8)
    assert top_values(codes, 3).tolist() == [5, 1, 9]
    assert top_values(codes, 8).tolist() == [5, 1, 9, 3]  # only 4 distinct values


def test_near_top_share_on_a_hand_made_tensor():
    # 8 values occur 3 times each (the top 8); 10 is within ±1 of 11; 30 and 50 are far off
    top = [0, 11, 20, 40, 60, 80, 100, 120]
    codes = np.array(top * 3 + [10, 30, 50, 121, 255], np.uint8)
    # near: the 24 top values, 10 (next to 11) and 121 (next to 120) -> 26 of 29
    assert near_top_share(codes) == pytest.approx(26 / 29)
    assert near_top_share(codes, tolerance=0) == pytest.approx(24 / 29)
    assert near_top_share(codes, k=1) == pytest.approx(3 / 29)  # top-1 is 0 (ties: smaller)


def test_similarity_table_counts_each_value_once_in_order():
    # one channel; top-8 values are 0..7 (most frequent); 100, 101, 150 are not near them
    x = np.zeros((3, 4), np.uint8)
    x[0] = [0, 1, 2, 3]
    x[1] = [4, 5, 6, 7]
    x[2] = [100, 101, 150, 0]
    t = similarity_table(x)
    n = 12
    assert set(t) == set(SIMILARITY_KEYS)
    assert t["m"] == pytest.approx(9 / n)  # every value except 100, 101, 150
    assert t["l"] == pytest.approx(1 / n)  # 101: its left neighbour is 100
    assert t["none"] == pytest.approx(2 / n)  # 100 (left: none, top: 4) and 150
    assert sum(t.values()) == pytest.approx(1.0)


def test_similarity_table_neighbour_order():
    # eight filler values (0, 10, ..., 70: the 8 most frequent) and six pairs of rare values
    # placed so that one value of each pair is near exactly one of its neighbours
    x = (np.arange(60) % 8 * 10).reshape(6, 10).astype(np.uint8)
    x[5, 4], x[5, 5] = 180, 181  # 181: near its left neighbour
    x[0, 2], x[1, 2] = 200, 201  # 201: near its top neighbour
    x[2, 2], x[3, 3] = 90, 91  # 91: near its top-left neighbour
    x[4, 7], x[3, 8] = 120, 121  # 120 is 121's bottom-left (and 121 is 120's top-right)
    t = similarity_table(x)
    n = x.size
    assert t["m"] == pytest.approx((n - 8) / n)
    assert t["l"] == pytest.approx(1 / n)
    assert t["t"] == pytest.approx(1 / n)
    assert t["tl"] == pytest.approx(1 / n)
    assert t["bl"] == pytest.approx(1 / n)  # 121
    assert t["tr"] == pytest.approx(1 / n)  # 120
    assert t["none"] == pytest.approx(2 / n + 1 / n)  # 180, 200, 90
    assert sum(t.values()) == pytest.approx(1.0)


def test_feature_statistics_batch():
    feats = np.stack(
        [np.maximum(np.random.default_rng(i).standard_normal((4, 5, 6)), 0) for i in range(3)]
    )
    q = quantize(feats.astype(np.float32), 8)
    s = feature_statistics(feats, q.codes)
    assert set(s["mean"]) == {"nonzero_codes", "entropy", "near_top", "nonzero_features"}
    assert s["mean"]["nonzero_features"] == pytest.approx(np.mean([nonzero_rate(f) for f in feats]))
    assert len(s["per_tensor"]["entropy"]) == 3
    assert sum(s["similarity"].values()) == pytest.approx(1.0)


# --------------------------------------------------------------------------- the benchmark
@pytest.mark.timeout(120)
def test_bench_codecs_tiny_configuration(tmp_path, capsys):
    from dfsim.tools.bench_codecs import bench_codecs, write_reproductions

    try:
        from dfsim.data.datasets import load_fashion_mnist

        load_fashion_mnist("test")
    except Exception as exc:  # noqa: BLE001 - no data here: nothing to benchmark
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    args = SimpleNamespace(
        seconds=0.2, json=None, images=2, cases=[("fmnist-resnet", "relu_2")], codecs=["raw"]
    )
    r = bench_codecs(args)
    assert set(r) >= {"config", "cases", "reproductions", "notes", "inputs", "seconds"}
    (case,) = r["cases"]
    assert case["split"] == "relu_2" and case["shape"] == [64, 14, 14]
    assert case["kind"] == "post-activation" and case["rows_per_packet"] == 4
    raw = case["codecs"]["raw"]
    assert raw["packet_exact"] and raw["packet_bpe"] == pytest.approx(8 + 64 / (64 * 14 * 14))
    assert raw["whole_bpe"] is None or raw["whole_bpe"] > 0
    for name in ("png", "jpeg-xl", "jpeg2000", "hevc"):
        if "skipped" not in case["images"][name]:
            assert case["images"][name]["bpe"] > 0
    assert set(case["compressors"]) == {"gzip", "zlib", "bz2", "lzma"}
    assert 0 < case["compressors"]["lzma"]["ratio_float32"] < 1
    rep = r["reproductions"]
    assert [row["split"] for row in rep["seed002"]] == ["relu_2"]
    assert rep["table1"][0]["split"] == "input image"
    assert rep["fig6"]["note"]  # palette not among the codecs benchmarked here
    assert "Feature statistics" in capsys.readouterr().out

    write_reproductions(r, tmp_path)
    md = (tmp_path / "reproductions.md").read_text()
    assert "(a) Chen et al." in md and "(b) Choi & Bajić Table I" in md and "Fig. 6" in md
    assert "| fmnist-resnet | relu_2 |" in md
    loaded = json.loads((tmp_path / "bench.json").read_text())
    assert loaded["cases"][0]["codecs"]["raw"]["packet_exact"] is True
    assert not any(isinstance(v, float) and math.isnan(v) for v in loaded["config"].values())
