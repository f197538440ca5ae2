"""The palette codec (Choi & Bajić 2018) and its binary arithmetic coder."""

import numpy as np
import pytest

from dfsim.codecs import cabac
from dfsim.codecs import palette as P
from dfsim.codecs.base import PayloadError
from dfsim.codecs.quantizer import quantize
from dfsim.registry import build, names
from dfsim.testing import synthetic_features
from dfsim.transport.packets import PacketLayout, packetize


# --------------------------------------------------------------------------- data
def featlike(n, c, h, w, bits=8, seed=0):
    """ReLU of spatially smoothed, channel-mixed Gaussian noise, quantized to ``bits``."""
    f = np.maximum(synthetic_features(n, (c, h, w), seed), 0)
    return quantize(f, bits).codes


def cut(codes, rows):
    """N x C x H x W -> (packets P x rows x W, nrows, image) like the network does."""
    n, c, h, w = codes.shape
    batch = packetize(codes, PacketLayout(c, h, w, rows))
    hdr = batch.header
    return batch.payload, hdr["nrows"].astype(np.int64), hdr["image"].astype(np.int64)


def packets_round_trip(codes, rows, bits):
    pk, nr, img = cut(codes, rows)
    pal = P.tensor_palette(codes, bits)[img]
    data, off, ideal = P.encode_packets(pk, nr, pal, bits)
    out, ok = P.decode_packets(data, off, nr, codes.shape[3], pal, bits)
    assert ok.all()
    assert out.dtype == (np.uint8 if bits <= 8 else np.uint16)
    for j in range(len(pk)):
        np.testing.assert_array_equal(out[j, : nr[j]], pk[j, : nr[j]])
    sizes = np.diff(off) * 8
    assert (sizes <= ideal + 16).all()  # the coder's termination costs at most ~1 byte
    return data, off, ideal


def cases():
    """(name, codes N x C x H x W, bits): feature-like data and adversarial cases."""
    rng = np.random.default_rng(7)
    out = [
        ("features", featlike(2, 8, 28, 28), 8),
        ("zeros", np.zeros((1, 4, 9, 10), np.uint8), 8),
        ("constant", np.full((1, 3, 8, 8), 77, np.uint8), 8),
        ("uniform-noise", rng.integers(0, 256, (1, 4, 12, 13), dtype=np.uint8), 8),
        ("single-channel", featlike(1, 1, 13, 7, seed=3), 8),
        ("odd-shapes", featlike(1, 3, 7, 5, seed=4), 8),
        ("max-16-bit-noise", rng.integers(0, 1 << 16, (1, 2, 6, 9), dtype=np.uint16), 16),
        ("extremes", np.array([0, 255], np.uint8)[rng.integers(0, 2, (1, 2, 8, 8))], 8),
    ]
    for bits in (2, 4, 6, 10, 16):
        out.append((f"features-{bits}bit", featlike(1, 5, 11, 14, bits, seed=bits), bits))
    return out


CASES = cases()


# --------------------------------------------------------------------------- coder
def test_cabac_round_trip_and_ideal_bits():
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 100, 3000):
        ctxs = rng.integers(0, 6, n)
        probs = rng.random(6) ** 3
        bits = (rng.random(n) < probs[ctxs]).astype(np.int64)
        bypass = rng.random(n) < 0.1
        data, ideal = cabac.encode_bins(bits, ctxs, bypass, n_contexts=6)
        out, ok = cabac.decode_bins(data, ctxs, bypass, n_contexts=6)
        assert ok and (out == bits).all()
        # margin: the canonical termination costs at most ~9 bits; it can also save some
        assert ideal - 16 <= 8 * len(data) <= ideal + 16
        assert not data.endswith(b"\0")
    # a long run of very probable bins costs almost nothing
    data, ideal = cabac.encode_bins(np.zeros(1000, np.int64), np.zeros(1000, np.int64))
    assert ideal < 100 and len(data) * 8 <= ideal + 16


def test_cabac_bypass_costs_one_bit_each():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 800)
    data, ideal = cabac.encode_bins(bits, np.zeros(800, np.int64), np.ones(800, bool))
    assert ideal == 800
    assert 800 - 16 <= 8 * len(data) <= 816
    out, ok = cabac.decode_bins(data, np.zeros(800, np.int64), np.ones(800, bool))
    assert ok and (out == bits).all()


def test_cabac_rejects_non_canonical_payloads():
    rng = np.random.default_rng(2)
    ctxs = rng.integers(0, 3, 200)
    bits = (rng.random(200) < 0.3).astype(np.int64)
    data, _ = cabac.encode_bins(bits, ctxs, n_contexts=3)
    assert not cabac.decode_bins(data + b"\0", ctxs, n_contexts=3)[1]  # trailing zero
    assert not cabac.decode_bins(data + b"\0\1", ctxs, n_contexts=3)[1]
    assert not cabac.decode_bins(data + bytes(8) + b"\1", ctxs, n_contexts=3)[1]  # unread
    assert not cabac.decode_bins(b"\xff" * 4, ctxs, n_contexts=3)[1]  # cannot start


# --------------------------------------------------------------------------- binarisations
def test_truncated_unary_index_table_ii():
    """j* is coded 0, 10, 110, ..., 1111110, 1111111 (Table II, index 0 read as 0)."""
    pal = np.array([0, 40, 80, 120, 160, 200, 240, 250], np.int64)
    for j in range(8):
        tile = np.full((4, 4), pal[j], np.uint16)
        bins, modes, skips, js = P._trace_packet(tile, pal, 8, P.INIT_PROB)
        assert js == j
        code = [1] * j + ([0] if j < 7 else [])
        assert list(bins[: len(code)]) == code
        # then one block: Pal is the mpm of the first block (flag 1), SKIP (1)
        assert list(bins[len(code) :]) == [1, 1]
        assert modes[0, 0] == P.PAL and skips[0, 0] == 1
        payload = P.encode_packet(tile, pal, 8)
        np.testing.assert_array_equal(P.decode_packet(payload, 4, 4, pal, 8), tile)


def test_palette_index_minimises_absolute_difference():
    pal = np.array([0, 10, 20, 30, 40, 50, 60, 70], np.int64)
    tile = np.array([[0, 0, 0, 33], [31, 32, 33, 34], [29, 30, 30, 30]], np.uint16)
    _, _, _, js = P._trace_packet(tile, pal, 8, P.INIT_PROB)
    assert js == 3  # median 30
    pal2 = np.array([20, 20, 5, 5, 5, 5, 5, 5], np.int64)  # ties go to the smaller index
    _, _, _, js = P._trace_packet(np.full((2, 2), 20, np.uint16), pal2, 8, P.INIT_PROB)
    assert js == 0


def test_skip_all_zero_packet():
    """All-zero packet, palette led by 0: j* = 0 ('0'), every block Pal = mpm ('1') and
    SKIP ('1'); partial blocks at the right and bottom too."""
    pal = P.tensor_palette(np.zeros((1, 1, 5, 10), np.uint8), 8)[0]
    assert list(pal) == [0, 1, 2, 3, 4, 5, 6, 7]
    x = np.zeros((5, 10), np.uint16)
    bins, modes, skips, js = P._trace_packet(x, pal, 8, P.INIT_PROB)
    assert js == 0 and (modes == P.PAL).all() and (skips == 1).all()
    assert modes.shape == (2, 3)
    assert list(bins) == [0] + [1, 1] * 6
    assert len(P.encode_packet(x, pal, 8)) <= 1


def test_exp_golomb_rice_binarisation():
    b = lambda rem, k: list(P._remainder_bins(rem, k))  # noqa: E731
    assert b(0, 0) == [0]
    assert b(2, 0) == [1, 1, 0]
    assert b(5, 1) == [1, 1, 0, 1]  # q = 2: 110, suffix 1
    assert b(7, 1) == [1, 1, 1, 0, 1]  # q = 3: 1110, suffix 1
    # q >= 4: 1111, then 20 - 8 = 12 in Exp-Golomb of order 2: 1 1 0 + 4 bits 0000
    assert b(20, 1) == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert b(4, 0) == [1, 1, 1, 1, 0, 0]  # escape, order 1: 0 -> '0' + '0'


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_residual_binarisation_round_trip(bits):
    """Significance map, greater-1/2 flags, signs, EGR remainders: random residual
    blocks of every size and mode decode to themselves."""
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    for bh in (1, 3, 4):
        for bw in (1, 2, 4):
            n = 60
            blocks = np.zeros((n, 16), np.int64)
            for i in range(n):
                scale = [1, 3, 20, top][i % 4]
                v = rng.integers(-scale, scale + 1, (bh, bw))
                v[rng.random((bh, bw)) < 0.4] = 0
                if not v.any():
                    v[bh - 1, bw - 1] = top  # never all zero: SKIP would code it
                blocks[i].reshape(4, 4)[:bh, :bw] = np.clip(v, -top, top)
            modes = rng.integers(0, 5, n)
            out, ok, ideal, nbytes = P._residual_round_trip(
                blocks, bh, bw, modes, bits, P.INIT_PROB
            )
            assert ok
            np.testing.assert_array_equal(out, blocks)
            assert 8 * nbytes <= ideal + 16


# --------------------------------------------------------------------------- prediction
def _only_zero_mode(x, y0, x0, p):
    zero = []
    r = np.zeros(16, np.int64)
    for m in range(5):
        P._residual(x, y0, x0, 4, 4, m, p, r)
        if not r.any():
            zero.append(m)
    return zero


def _check_block_mode(x16, pal, by, bx, mode):
    x = x16.astype(np.int64)
    _, _, _, js = P._trace_packet(x16, pal, 8, P.INIT_PROB)
    assert _only_zero_mode(x, 4 * by, 4 * bx, pal[js]) == [mode]
    _, modes, skips, _ = P._trace_packet(x16, pal, 8, P.INIT_PROB)
    assert modes[by, bx] == mode and skips[by, bx] == 1
    payload = P.encode_packet(x16, pal, 8)
    np.testing.assert_array_equal(P.decode_packet(payload, *x16.shape, pal, 8), x16)


PAL8 = np.array([150, 0, 255, 10, 20, 30, 40, 50], np.int64)


def test_ver_mode_block_constant_per_column():
    rng = np.random.default_rng(3)
    x = np.tile(rng.integers(0, 256, 8), (8, 1)).astype(np.uint16)  # constant per column
    for bx in (0, 1):
        _check_block_mode(x, PAL8, 1, bx, P.VER)


def test_hor_mode_block_constant_per_row():
    rng = np.random.default_rng(4)
    x = np.tile(rng.integers(0, 256, 8)[:, None], (1, 8)).astype(np.uint16)
    for by in (0, 1):
        _check_block_mode(x, PAL8, by, 1, P.HOR)


def test_pal_mode_block_equal_to_palette_entry():
    rng = np.random.default_rng(5)
    x = rng.integers(100, 201, (8, 8)).astype(np.uint16)
    x[4:8, 4:8] = 150
    _check_block_mode(x, PAL8, 1, 1, P.PAL)


@pytest.mark.parametrize("mode", [P.FIL1, P.FIL2])
def test_filter_mode_block_following_its_filter(mode):
    """A block generated by the 3-tap filter from its neighbours: (a tl + b t + c l +
    16) >> 5 with (a, b, c) = (3, 7, 22) for Fil1 and (14, 0, 18) for Fil2."""
    a, b, c = P.FIL_TAPS[mode - P.FIL1]
    rng = np.random.default_rng(6 + mode)
    x = rng.integers(0, 256, (12, 12)).astype(np.int64)
    for y in range(4, 8):
        for xx in range(4, 8):
            x[y, xx] = (a * x[y - 1, xx - 1] + b * x[y - 1, xx] + c * x[y, xx - 1] + 16) >> 5
    _check_block_mode(x.astype(np.uint16), PAL8, 1, 1, mode)


def test_prediction_at_tile_boundaries_uses_palette_value():
    p = 9
    x = np.arange(16, dtype=np.int64).reshape(4, 4) + 20
    r = np.zeros(16, np.int64)
    for m in range(5):  # at the tile's corner every mode predicts p everywhere unavailable
        P._residual(x, 0, 0, 4, 4, m, p, r)
        assert r[0] == x[0, 0] - p
    P._residual(x, 0, 0, 4, 4, P.VER, p, r)
    assert (r.reshape(4, 4) == x - p).all()
    P._residual(x, 0, 0, 4, 4, P.FIL1, p, r)
    # second value of the first row: left = x[0, 0], top and top-left unavailable (p)
    assert r[1] == x[0, 1] - ((3 * p + 7 * p + 22 * x[0, 0] + 16) >> 5)


def test_most_probable_mode():
    def mpm(left, top, tl):
        modes = np.array([tl, top, left, 0], np.int64)  # 2 x 2 blocks, current (1, 1)
        return P._mpm(modes, 1, 1, 2)

    assert P._mpm(np.zeros(4, np.int64), 0, 0, 2) == P.PAL  # no neighbour
    assert P._mpm(np.array([P.HOR, 0], np.int64), 0, 1, 2) == P.HOR  # left only
    assert P._mpm(np.array([P.VER, 0, 0, 0], np.int64), 1, 0, 2) == P.VER  # top only
    assert mpm(P.HOR, P.VER, P.VER) == P.VER  # two votes
    assert mpm(P.HOR, P.VER, P.HOR) == P.HOR
    assert mpm(P.FIL2, P.FIL2, P.PAL) == P.FIL2
    assert mpm(P.HOR, P.VER, P.FIL1) == P.HOR  # three-way tie: the left block's


def test_mode_decision_prefers_fewest_bits_and_mpm_on_ties():
    """In a constant tile every mode has a zero residual: the mpm (Pal from the first
    block on) is kept everywhere, each block costing 2 bins."""
    x = np.full((8, 12), 150, np.uint16)  # = PAL8[0]
    bins, modes, skips, js = P._trace_packet(x, PAL8, 8, P.INIT_PROB)
    assert (modes == P.PAL).all() and (skips == 1).all()
    assert len(bins) == 1 + 2 * 6 + js


# --------------------------------------------------------------------------- palette
def test_tensor_palette_ranking_and_fill():
    codes = np.array([[5, 5, 5, 3, 3, 9, 9, 1]], np.uint8).reshape(1, 1, 2, 4)
    # counts 5:3, 3:2, 9:2 (tie -> smaller first), 1:1; then absent values 0, 2, 4, 6
    assert list(P.tensor_palette(codes, 8)[0]) == [5, 3, 9, 1, 0, 2, 4, 6]
    # 2-bit codes: only 4 values exist, they repeat
    two = np.array([3, 3, 3, 1, 1, 0], np.uint8).reshape(1, 1, 2, 3)
    assert list(P.tensor_palette(two, 2)[0]) == [3, 1, 0, 2, 3, 1, 0, 2]
    assert list(P.tensor_palette(two)[0]) == [3, 1, 0, 2, 3, 1, 0, 2]  # bits from data
    many = np.zeros((3, 2, 4, 4), np.uint16)
    many[1] = 1000
    assert P.tensor_palette(many, 16).shape == (3, 8)
    assert P.tensor_palette(many, 16)[1, 0] == 1000


def test_palette_update_rule_over_tiles():
    """Initial order: frequency in the first tile; before each later tile: a stable
    re-sort by occurrences in all tiles coded so far."""
    tiles = np.array(
        [
            [[5, 5, 5, 7], [7, 9, 0, 0]],
            [[9, 9, 9, 9], [9, 9, 9, 9]],
            [[3, 3, 3, 3], [3, 3, 3, 3]],
        ],
        np.uint8,
    )
    pal = P.tensor_palette(tiles[None], 4)[0]
    assert list(pal) == [9, 3, 5, 0, 7, 1, 2, 4]  # 9:9, 3:8, 5:3, 0:2, 7:2, then absent
    orders = P.tile_palette_orders(tiles, 4)
    assert [list(o) for o in orders] == [
        [5, 0, 7, 9, 3, 1, 2, 4],  # the first tile's frequencies, ties in tensor order
        [5, 0, 7, 9, 3, 1, 2, 4],  # counts of tile 0 only: unchanged
        [9, 5, 0, 7, 3, 1, 2, 4],  # 9 seen 9 times in tiles 0-1
    ]
    payload = P.encode_tensor(tiles, 4)
    np.testing.assert_array_equal(P.decode_tensor(payload, tiles.shape, 4), tiles)


def test_stable_sort_keeps_ties_in_order():
    pal = np.array([1, 2, 3, 4, 5, 6, 7, 8], np.int64)
    counts = np.array([0, 5, 0, 5, 9, 0, 0, 1], np.int64)
    P._stable_sort_by_count(pal, counts)
    assert list(pal) == [5, 2, 4, 8, 1, 3, 6, 7]
    assert list(counts) == [9, 5, 5, 1, 0, 0, 0, 0]


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name,codes,bits", CASES, ids=[c[0] for c in CASES])
def test_round_trip_whole_tensor(name, codes, bits):
    for t in codes:
        payload, ideal = P.encode_tensor(t, bits, return_ideal=True)
        out = P.decode_tensor(payload, t.shape, bits)
        assert out.dtype == (np.uint8 if bits <= 8 else np.uint16)
        np.testing.assert_array_equal(out, t)
        assert 8 * len(payload) <= ideal + 16


@pytest.mark.parametrize("name,codes,bits", CASES, ids=[c[0] for c in CASES])
def test_round_trip_packets(name, codes, bits):
    h = codes.shape[2]
    for rows in sorted({1, 3, 4, 5, h}):
        if rows <= h:
            packets_round_trip(codes, rows, bits)


def test_max_entropy_noise_costs_about_its_bits():
    rng = np.random.default_rng(8)
    codes = rng.integers(0, 256, (1, 4, 16, 16), dtype=np.uint8)
    payload = P.encode_tensor(codes[0], 8)
    assert 8 * len(payload) / codes.size < 10  # no blow-up on incompressible data


def test_packets_start_afresh():
    """Every packet codes the same whatever precedes it in the batch: independence."""
    codes = featlike(2, 4, 12, 14, seed=9)
    pk, nr, img = cut(codes, 4)
    pal = P.tensor_palette(codes, 8)[img]
    data, off, _ = P.encode_packets(pk, nr, pal, 8)
    for j in (0, 5, len(pk) - 1):
        alone = P.encode_packet(pk[j, : nr[j]], pal[j], 8)
        assert alone == data[off[j] : off[j + 1]].tobytes()
    # any subset decodes on its own
    sub = np.array([len(pk) - 1, 3])
    out, ok = P._decode_ranges(data, off[sub], off[sub + 1], nr[sub], 14, pal[sub], 8)
    assert ok.all()
    np.testing.assert_array_equal(out, pk[sub])


def test_whole_tensor_and_packet_sizes_on_features():
    codes = featlike(3, 16, 28, 28, seed=10)
    whole = sum(8 * len(P.encode_tensor(t, 8)) for t in codes)
    data, off, ideal = packets_round_trip(codes, 4, 8)
    per_packet = 8 * len(data)
    channel = 8 * len(packets_round_trip(codes, 28, 8)[0])
    raw = codes.size * 8
    # 4-row packets pay for restarting the coder and contexts 7 times per channel; one
    # packet per channel is about the whole-tensor stream (on this model's features the
    # stream is ~1% smaller; on these synthetic channels, whose scales differ widely,
    # restarting per channel is ~1% better)
    assert whole < per_packet < raw and channel < per_packet
    assert abs(whole - channel) < 0.03 * channel
    assert per_packet < 1.6 * whole


@pytest.fixture(scope="module")
def real_features():
    """8-bit codes of the default model's features (4 test images) at two split points."""
    torch = pytest.importorskip("torch")
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.models import load_model

    try:
        images = load_fashion_mnist("test").head(4).images
    except Exception as e:  # the dataset package is not installed
        pytest.skip(f"no Fashion-MNIST: {e}")
    model = load_model("fmnist-resnet")
    out = {}
    with torch.no_grad():
        for split in ("stem", "add_1"):
            f = model.edge(split)(model.normalise(images))
            f = f[0] if isinstance(f, (tuple, list)) else f
            out[split] = quantize(f.numpy(), 8).codes
    return out


def test_real_features_round_trip_and_beat_png_after_relu(real_features):
    for codes in real_features.values():
        for t in codes:
            payload = P.encode_tensor(t, 8)
            np.testing.assert_array_equal(P.decode_tensor(payload, t.shape, 8), t)
        packets_round_trip(codes, 4, 8)
    cv2 = pytest.importorskip("cv2")
    from dfsim.codecs.tiling import tile

    codes = real_features["stem"]  # post-ReLU: concentrated at 0 (the paper's setting)
    ours = sum(len(P.encode_tensor(t, 8)) for t in codes)
    png = sum(
        len(cv2.imencode(".png", tile(t), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1]) for t in codes
    )
    assert ours < 0.95 * png


# --------------------------------------------------------------------------- damage
def _feature_packets(check_bits=0):
    codes = featlike(4, 8, 12, 28, seed=11)
    pk, nr, img = cut(codes, 4)
    pal = P.tensor_palette(codes, 8)[img]
    data, off, _ = P.encode_packets(pk, nr, pal, 8, check_bits)
    return pk, nr, pal, data, off


def _decode_list(chunks, nr, pal, width=28, bits=8, check_bits=0):
    off = np.zeros(len(chunks) + 1, np.int64)
    off[1:] = np.cumsum([len(c) for c in chunks])
    data = np.frombuffer(b"".join(chunks), np.uint8)
    return P.decode_packets(data, off, nr, width, pal, bits, check_bits)


def _flip_one_bit(chunks, seed):
    rng = np.random.default_rng(seed)
    out = []
    for c in chunks:
        b = bytearray(c)
        b[rng.integers(0, len(b))] ^= 1 << rng.integers(0, 8)
        out.append(bytes(b))
    return out


def test_damaged_payloads_are_detected_without_check_bits():
    """No redundancy (the default): what is not canonical is always rejected, a flipped
    bit or an extra byte most of the time; a truncated payload often decodes to other
    values (the transport's CRC-32 is what rejects it)."""
    pk, nr, pal, data, off = _feature_packets()
    chunks = [data[off[j] : off[j + 1]].tobytes() for j in range(len(pk))]
    keep = np.array([len(c) > 0 for c in chunks])
    chunks = [c for c in chunks if c]
    nr, pal, pk = nr[keep], pal[keep], pk[keep]
    # a trailing zero byte (never produced) and bytes the decoder never needs: always
    _, ok = _decode_list([c + b"\0" for c in chunks], nr, pal)
    assert not ok.any()
    _, ok = _decode_list([c + bytes(6) + b"\7" for c in chunks], nr, pal)
    assert not ok.any()
    _, ok = _decode_list([c + b"\x5a" for c in chunks], nr, pal)
    assert ok.mean() < 0.1
    out, ok = _decode_list(_flip_one_bit(chunks, 12), nr, pal)
    assert ok.mean() < 0.3
    assert (out[~ok] == 0).all()
    # the intact ones still decode (not mixed up by their damaged neighbours)
    out, ok = _decode_list(chunks, nr, pal)
    assert ok.all() and (out == pk).all()


def test_check_bits_detect_truncation_and_corruption():
    k = 8
    pk, nr, pal, data, off = _feature_packets(k)
    plain = _feature_packets(0)[3]
    assert len(data) - len(plain) <= len(pk) * (k / 8 + 1)  # ~k bits a packet
    chunks = [data[off[j] : off[j + 1]].tobytes() for j in range(len(pk))]
    out, ok = _decode_list(chunks, nr, pal, check_bits=k)
    assert ok.all() and (out == pk).all()
    for damaged in (
        [c[:-1] for c in chunks],
        [c[:-2] for c in chunks],
        [c + b"\x5a" for c in chunks],
        _flip_one_bit(chunks, 13),
    ):
        _, ok = _decode_list(damaged, nr, pal, check_bits=k)
        assert ok.mean() < 0.02
    # the whole-tensor stream too
    t = featlike(1, 4, 12, 12, seed=14)[0]
    payload = P.encode_tensor(t, 8, check_bits=16)
    np.testing.assert_array_equal(P.decode_tensor(payload, t.shape, 8, check_bits=16), t)
    with pytest.raises(PayloadError):
        P.decode_tensor(payload[:-1], t.shape, 8, check_bits=16)


def test_decode_packet_raises_payload_error():
    pk, nr, pal, data, off = _feature_packets()
    payload = data[off[0] : off[1]].tobytes()
    np.testing.assert_array_equal(P.decode_packet(payload, 4, 28, pal[0], 8), pk[0])
    with pytest.raises(PayloadError):
        P.decode_packet(payload + b"\0", 4, 28, pal[0], 8)
    with pytest.raises(PayloadError):
        P.decode_packet(b"\xff\xff\xff\xff", 4, 28, pal[0], 8)
    assert issubclass(PayloadError, ValueError)


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_garbage_never_crashes(bits):
    """Random payloads: decoding terminates, values stay in range, most are rejected."""
    rng = np.random.default_rng(bits)
    n = 400
    chunks = [rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8).tobytes() for _ in range(n)]
    nr = rng.integers(1, 9, n)
    pal = np.sort(rng.integers(0, 1 << bits, (n, 8)), axis=1)
    out, ok = _decode_list(chunks, nr, pal, width=11, bits=bits)
    assert out.shape == (n, 8, 11)
    assert int(out.max()) <= (1 << bits) - 1
    assert ok.mean() < 0.5
    # all-zero padding bytes and huge values do not loop either
    _, ok = _decode_list([b"\x7f" * 200, b"\1" + bytes(50)], nr[:2], pal[:2], 11, bits)
    assert not ok.any()


def test_codec_conformance():
    from dfsim.testing import check_codec

    check_codec("palette")
    check_codec("palette", params={"bits": 4, "check_bits": 8})


def test_bad_arguments():
    codes = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ValueError):
        P.encode_tensor(codes, 1)
    with pytest.raises(ValueError):
        P.encode_tensor(codes + 9, 3)  # 9 does not fit in 3 bits
    with pytest.raises(ValueError):
        P.encode_packets(codes, [4, 4], np.zeros((1, 8)), 8)  # one palette for 2 packets
    with pytest.raises(ValueError):
        P.encode_packets(codes, [5, 4], np.zeros((2, 8)), 8)  # nrows > rows


# --------------------------------------------------------------------------- the codec
def test_codec_registered_and_round_trips_with_losses():
    assert "palette" in names("codec")
    codec = build("codec", "palette", bits=6)
    assert codec.bits == 6 and codec.name == "palette"
    rng = np.random.default_rng(13)
    feats = np.maximum(synthetic_features(3, (4, 10, 12), seed=5), 0)
    layout = PacketLayout(4, 10, 12, 4)
    enc = codec.encode(feats, layout)
    assert (enc.side_info["palette"].shape == (3, 8)) and (enc.side_info_bits == 64 + 48).all()
    received = rng.random(enc.payload_bits.shape) > 0.3
    values, lost = codec.decode(enc, received, enc.side_info)
    q = quantize(feats, 6)
    expect = q.codes * ((q.vmax - q.vmin) / 63)[:, None, None, None] + q.vmin[:, None, None, None]
    np.testing.assert_allclose(values[~lost], expect[~lost], rtol=1e-5, atol=1e-5)
    assert lost.sum() > 0 and (values[lost] == 0).all()
    assert enc.ideal_bits is not None
    assert (enc.payload_bits.sum(axis=1) <= enc.ideal_bits + 16 * enc.payload_bits.shape[1]).all()
    # whole-tensor mode through the class
    tc = codec.encode_tensor(q.codes[0])
    np.testing.assert_array_equal(codec.decode_tensor(tc, q.codes[0].shape), q.codes[0])
    # one packet through the plain-Python interface
    side = {"palette": enc.side_info["palette"][0]}
    payload = codec.encode_packet(q.codes[0, 1, :4], side)
    np.testing.assert_array_equal(codec.decode_packet(payload, 4, 12, side), q.codes[0, 1, :4])
    with pytest.raises(PayloadError):
        codec.decode_packet(payload + b"\0", 4, 12, side)
