"""The ``range`` codec (rANS per packet, :mod:`dfsim.codecs.range_coder`): bit-exact round
trips on feature-like and adversarial tensors at every bit depth, sizes against the
order-0 entropy and the ideal bits, side information, robustness to damaged payloads
and side information, the calibrated model."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dfsim.codecs.base import PacketBytes, PayloadError
from dfsim.codecs.quantizer import quantize
from dfsim.codecs.range_coder import SIDE_KEY, RangeCodec
from dfsim.codecs.range_coder.side_info import parse_tables as _parse_tables
from dfsim.errors import UserError
from dfsim.registry import build
from dfsim.transport.packets import PacketLayout, packetize


def feature_like(n, c=4, h=28, w=28, seed=0):
    """ReLU of spatially smoothed Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.standard_normal((n, c, h, w)).astype(np.float32), (0, 0, 1.5, 1.5))
    return np.maximum(x, 0)


def entropy0(codes) -> float:
    counts = np.bincount(codes.reshape(-1).astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def coded(codec, codes, rows):
    """Encode quantized codes N x C x H x W in ``rows``-row packets."""
    lay = PacketLayout.for_shape(codes.shape[1:], rows)
    batch = packetize(codes, lay)
    nrows = batch.header["nrows"].astype(np.int64)
    image = batch.header["image"].astype(np.int64)
    side, side_bits = codec.tensor_side_info(codes)
    payloads, ideal = codec.encode_packets(batch.payload, nrows, image, side)
    return lay, batch, nrows, image, side, side_bits, payloads, ideal


def round_trip(codec, codes, rows):
    """Encode, decode every packet, check bit-exactness; the encoding's parts."""
    lay, batch, nrows, image, side, side_bits, payloads, ideal = coded(codec, codes, rows)
    which = np.arange(len(nrows))
    out, ok = codec.decode_packets(payloads, which, nrows, lay.width, image, side)
    assert ok.all(), f"{(~ok).sum()} packets failed"
    for j in which:
        assert np.array_equal(out[j, : nrows[j]], batch.payload[j, : nrows[j]])
    sizes = payloads.sizes_bits()
    assert (sizes <= [codec.max_payload_bits(int(r), lay.width) for r in nrows]).all()
    assert side_bits.dtype == np.int64 and (side_bits <= codec.model_side_info_bits).all()
    return lay, batch, nrows, image, side, side_bits, payloads, ideal


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("bits", range(2, 17))
def test_feature_like_round_trip_every_bit_depth(bits):
    codes = quantize(feature_like(2, c=3, seed=bits), bits).codes
    for rows in (1, 3, 4):  # 3 does not divide 28: the last packet of a channel has 1 row
        round_trip(RangeCodec(bits), codes, rows)


def adversarial(bits, rng):
    top = (1 << bits) - 1
    dtype = np.uint8 if bits <= 8 else np.uint16
    shape = (2, 3, 9, 7)
    spikes = np.zeros(shape, dtype)
    spikes.reshape(-1)[::23] = top
    two = rng.integers(0, 2, shape).astype(dtype) * top
    return {
        "all zeros": np.zeros(shape, dtype),
        "constant": quantize(np.full(shape, 3.5, np.float32), bits).codes,
        "single nonzero symbol": np.full(shape, top // 3 + 1, dtype),
        "uniform noise": rng.integers(0, top + 1, shape).astype(dtype),
        "spikes": spikes,
        "two extremes": two,
        "per-image extremes": np.stack(
            [np.zeros(shape[1:], dtype), np.full(shape[1:], top, dtype)]
        ),
    }


@pytest.mark.parametrize("bits", [2, 3, 8, 9, 13, 16])
def test_adversarial_round_trip(bits):
    rng = np.random.default_rng(bits)
    for name, codes in adversarial(bits, rng).items():
        for rows in (1, 2, 4):  # 9 rows: 4 leaves a 1-row packet
            _, _, nrows, _, _, side_bits, payloads, _ = round_trip(RangeCodec(bits), codes, rows)
            sizes = payloads.sizes_bits()
            if name in ("all zeros", "constant", "single nonzero symbol"):
                assert (sizes == 0).all(), name  # one symbol: nothing to send but its table
                assert (side_bits <= 64).all(), name
            if name == "uniform noise":  # the raw fallback: never above n * bits
                raw = 8 * ((nrows * 7 * bits + 7) // 8)
                assert (sizes <= raw).all()


def test_packets_decode_independently_in_any_order():
    codec = RangeCodec(8)
    codes = quantize(feature_like(3, seed=1), 8).codes
    lay, batch, nrows, image, side, _, payloads, _ = coded(codec, codes, 4)
    rng = np.random.default_rng(0)
    which = rng.permutation(len(nrows))[: len(nrows) // 3]
    out, ok = codec.decode_packets(payloads, which, nrows[which], lay.width, image[which], side)
    assert ok.all()
    assert np.array_equal(out, batch.payload[which])
    # only this image's side information is needed: a batch holding just that row works
    j = int(which[0])
    one = {SIDE_KEY: side[SIDE_KEY][image[j] : image[j] + 1]}
    out1, ok1 = codec.decode_packets(payloads, np.array([j]), nrows[[j]], lay.width, [0], one)
    assert ok1.all() and np.array_equal(out1[0], batch.payload[j])


# --------------------------------------------------------------------------- sizes
def ideal_from_table(codes_packet, table, bits):
    """-sum log2 p of a packet's codes under a parsed table (d, s, syms, freqs)."""
    d, s, syms, freqs = table
    f = np.zeros(1 << (bits - d))
    f[syms] = freqs
    hi = codes_packet.reshape(-1).astype(np.int64) >> d
    return float(np.sum(s + d - np.log2(f[hi])))


def test_ideal_bits_are_the_model_cost_and_actual_bits_stay_close():
    """ideal = -sum log2 p under the sent table; actual <= ideal + 24 + 0.02 n bits per
    packet (measured: at most ~16 over; below ideal when trailing zeros come free)."""
    for bits in (3, 8, 12):
        codec = RangeCodec(bits)
        codes = quantize(feature_like(2, seed=bits), bits).codes
        lay, batch, nrows, image, side, _, payloads, ideal = round_trip(codec, codes, 4)
        t_d, t_s, t_off, t_sym, t_f, t_ok = _parse_tables(side[SIDE_KEY], np.arange(2), bits)
        assert t_ok.all()
        for j in range(0, len(nrows), 7):
            i = image[j]
            table = (t_d[i], t_s[i], t_sym[t_off[i] : t_off[i + 1]], t_f[t_off[i] : t_off[i + 1]])
            want = ideal_from_table(batch.payload[j, : nrows[j]], table, bits)
            assert ideal[j] == pytest.approx(want, rel=1e-9, abs=1e-6)
        n = nrows * lay.width
        over = payloads.sizes_bits() - ideal
        assert (over <= 24 + 0.02 * n).all(), over.max()
        assert over.mean() <= 8.0, over.mean()


def test_size_within_ten_percent_of_order0_entropy():
    """32x28x28 8-bit feature-like tensors in 4-row packets: the packets' bits within
    10 % of H0 x values (measured ~1.2 %; ~2.2 % with the table)."""
    codec = RangeCodec(8)
    codes = quantize(feature_like(2, c=32, seed=7), 8).codes
    _, _, nrows, image, _, side_bits, payloads, _ = round_trip(codec, codes, 4)
    sizes = payloads.sizes_bits()
    for i in range(len(codes)):
        h0 = entropy0(codes[i]) * codes[i].size
        bits = sizes[image == i].sum()
        assert bits <= 1.10 * h0
        assert bits + side_bits[i] <= 1.10 * h0
        assert bits <= 1.03 * h0 and bits + side_bits[i] <= 1.05 * h0  # what it achieves
        assert side_bits[i] < 0.02 * h0
        per_packet = sizes[image == i].mean()
        assert per_packet <= 1.10 * entropy0(codes[i]) * 112


# --------------------------------------------------------------------------- side information
def test_side_information_is_counted_exactly_and_decodes():
    codec = RangeCodec(8)
    codes = quantize(feature_like(3, seed=3), 8).codes
    side, side_bits = codec.tensor_side_info(codes)
    raw = side[SIDE_KEY]
    assert raw.dtype == np.uint8 and raw.shape == (3, (side_bits.max() + 7) // 8)
    t_d, t_s, t_off, t_sym, t_f, t_ok = _parse_tables(raw, np.arange(3), 8)
    assert t_ok.all()
    for i in range(3):
        nbits = int(side_bits[i])
        # nothing is hidden past the counted bits: they are padding zeros
        tail = np.unpackbits(raw[i])[nbits:]
        assert not tail.any()
        # the table cut to its counted bits still parses to the same table
        cut = np.packbits(np.unpackbits(raw[i])[:nbits])[None]
        again = _parse_tables(cut, np.zeros(1, np.int64), 8)
        assert again[5][0] and np.array_equal(again[3], t_sym[t_off[i] : t_off[i + 1]])
        # and one bit fewer does not
        short = np.packbits(np.unpackbits(raw[i])[: nbits - 1])[None]
        assert not _parse_tables(short, np.zeros(1, np.int64), 8)[5][0] or nbits % 8 != 1
        # the table: the symbols present in the image (d = 0), frequencies summing to 2^s
        assert t_d[i] == 0
        syms = t_sym[t_off[i] : t_off[i + 1]]
        assert np.array_equal(syms, np.unique(codes[i]))
        assert t_f[t_off[i] : t_off[i + 1]].sum() == (1 << t_s[i]) - 1  # slot 0 reserved
    assert (side_bits <= codec.side_info_bits).all()


def test_table_budget_falls_back_to_coarser_tables():
    codes = quantize(feature_like(2, seed=5), 12).codes
    for budget in (64, 512, 2048):
        codec = RangeCodec(12, max_table_bits=budget)
        _, _, _, _, side, side_bits, payloads, _ = round_trip(codec, codes, 4)
        assert (side_bits <= budget).all()
        t_d = _parse_tables(side[SIDE_KEY], np.arange(2), 12)[0]
        assert (t_d > 0).all()  # a coarser (hi = v >> d) table
        assert payloads.sizes_bits().sum() < 12 * codes.size  # still compresses


# --------------------------------------------------------------------------- robustness
def damaged(payloads, how, rng):
    chunks = []
    for j in range(len(payloads)):
        c = payloads.payload(j)
        if how == "drop last":
            c = c[:-1]
        elif how == "drop first":
            c = c[1:]
        elif how == "append":
            c = c + bytes([int(rng.integers(256))])
        elif how == "flip":
            a = bytearray(c)
            if a:
                a[rng.integers(len(a))] ^= 1 << int(rng.integers(8))
            c = bytes(a)
        elif how == "random":
            c = rng.integers(0, 256, len(c)).astype(np.uint8).tobytes()
        chunks.append(c)
    return PacketBytes.from_list(chunks)


@pytest.mark.parametrize("how", ["drop last", "drop first", "append", "flip", "random"])
def test_damaged_payloads_are_detected(how):
    """Measured on these tensors: 95-100 % of damaged payloads rejected, 87-92 % of
    single bit flips (a flip often only changes a few values: the result is another
    valid code; the transport's CRC-32 is the real integrity check)."""
    codec = RangeCodec(8)
    codes = quantize(feature_like(3, c=8, seed=11), 8).codes
    lay, batch, nrows, image, side, _, payloads, _ = coded(codec, codes, 4)
    bad = damaged(payloads, how, np.random.default_rng(1))
    changed = np.array([bad.payload(j) != payloads.payload(j) for j in range(len(nrows))])
    which = np.arange(len(nrows))
    out, ok = codec.decode_packets(bad, which, nrows, lay.width, image, side)
    assert ok[changed].mean() <= (0.2 if how == "flip" else 0.08)
    assert not out[~ok].any()  # failed packets come back as zeros
    if how in ("drop last", "append"):
        j = int(np.flatnonzero(changed & ~ok)[0])
        one = {SIDE_KEY: side[SIDE_KEY][image[j]]}
        with pytest.raises(PayloadError):
            codec.decode_packet(bad.payload(j), int(nrows[j]), lay.width, one)


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_garbage_payloads_never_crash(bits):
    rng = np.random.default_rng(bits)
    codec = RangeCodec(bits)
    codes = quantize(feature_like(2, c=2, h=8, w=6, seed=2), bits).codes
    side, _ = codec.tensor_side_info(codes)
    n = 400
    nrows = rng.integers(1, 6, n)
    lens = rng.integers(0, 8 + 6 * 6 * bits // 8 + 4, n)
    chunks = [rng.integers(0, 256, k).astype(np.uint8).tobytes() for k in lens]
    chunks[:4] = [b"", b"\x00", b"\x80\x00\x00\x00", b"\xff" * 5]
    payloads = PacketBytes.from_list(chunks)
    image = rng.integers(0, 2, n)
    out, ok = codec.decode_packets(payloads, np.arange(n), nrows, 6, image, side)
    assert out.shape == (n, 5, 6) and ok.dtype == bool
    assert ok.mean() < 0.5
    assert not out[~ok].any()
    for j in np.flatnonzero(ok):  # what does decode is in range
        assert int(out[j].max()) < 1 << bits


def test_garbage_side_information_never_crashes():
    rng = np.random.default_rng(5)
    codec = RangeCodec(8)
    codes = quantize(feature_like(2, c=4, seed=4), 8).codes
    lay, _, nrows, image, side, _, payloads, _ = coded(codec, codes, 4)
    which = np.arange(len(nrows))
    for trial in range(30):
        junk = rng.integers(0, 256, side[SIDE_KEY].shape).astype(np.uint8)
        if trial < 3:
            junk = np.zeros((2, trial * 3), np.uint8)  # empty or too short: cannot parse
        out, ok = codec.decode_packets(payloads, which, nrows, lay.width, image, {SIDE_KEY: junk})
        if trial < 3:
            assert not ok.any()
        assert not out[~ok].any()
    # the previous image's table (side-information policy "previous"): mostly rejected
    swapped = {SIDE_KEY: side[SIDE_KEY][::-1].copy()}
    _, ok = codec.decode_packets(payloads, which, nrows, lay.width, image, swapped)
    assert ok.mean() < 0.2


def test_encoder_rejects_codes_outside_the_model():
    codec = RangeCodec(4)
    codes = np.zeros((1, 1, 4, 4), np.uint8)
    codes[0, 0, 0, 0] = 16
    with pytest.raises(ValueError, match="exceeds 4 bits"):
        codec.tensor_side_info(codes)
    ok_codes = np.zeros((1, 1, 4, 4), np.uint8)
    lay, batch, nrows, image, side, *_ = coded(codec, ok_codes, 4)
    other = batch.payload.copy()
    other[0, 0, 0] = 3  # absent from the image's table
    with pytest.raises(ValueError, match="probability 0"):
        codec.encode_packets(other, nrows, image, side)


# --------------------------------------------------------------------------- calibrated
def test_calibrated_model_codes_unseen_symbols():
    codec = RangeCodec(8, model="calibrated")
    assert codec.needs_fit and codec.model_side_info_bits == 0
    train = quantize(feature_like(4, seed=21), 8).codes
    train = np.minimum(train, 100)  # 101..255 never seen in training
    test = quantize(feature_like(2, seed=22), 8).codes
    assert test.max() > 100
    with pytest.raises(RuntimeError, match="fit"):
        coded(codec, test, 4)
    codec.fit_codes(train)
    lay, batch, nrows, image, side, side_bits, payloads, ideal = round_trip(codec, test, 4)
    assert side == {} and not side_bits.any()
    # an unseen symbol keeps a frequency >= 1 of 2^s - 1: at most s bits, and dearer
    # than any symbol seen in training
    scale = int(codec.fitted_state()["scale"][0])
    assert 8 < scale <= 22
    probe = np.full((1, 1, 1, 8), 200, np.uint8)
    seen = np.zeros((1, 1, 1, 8), np.uint8)
    *_, ideal_probe = coded(codec, probe, 1)
    *_, ideal_seen = coded(codec, seen, 1)
    assert ideal_seen[0] < ideal_probe[0] <= 8 * scale
    # close to the tensor model on data like the training data
    tensor = RangeCodec(8)
    *_, side_t, p_t, _ = coded(tensor, test, 4)
    assert payloads.sizes_bits().sum() < 1.2 * p_t.sizes_bits().sum()
    # the fit survives fitted_state / load_fitted_state
    again = RangeCodec(8, model="calibrated").load_fitted_state(codec.fitted_state())
    p2, _ = again.encode_packets(batch.payload, nrows, image, {})
    assert np.array_equal(p2.data, payloads.data)


@pytest.mark.parametrize("bits", [2, 16])
def test_calibrated_model_extreme_bit_depths(bits):
    codec = RangeCodec(bits, model="calibrated")
    codec.fit_codes(quantize(feature_like(2, c=2, seed=1), bits).codes)
    codes = quantize(feature_like(2, c=2, seed=2), bits).codes
    round_trip(codec, codes, 3)


# --------------------------------------------------------------------------- the codec stage
def test_registered_with_declared_parameters():
    codec = build("codec", "range", "encoding", bits=10, model="calibrated")
    assert isinstance(codec, RangeCodec) and codec.bits == 10 and codec.model == "calibrated"
    with pytest.raises(UserError, match="model"):
        build("codec", "range", "encoding", model="adaptive")
    with pytest.raises(UserError, match="bits"):
        build("codec", "range", "encoding", bits=17)
    assert RangeCodec(8).max_payload_bits(4, 28) == 4 * 28 * 8
    assert RangeCodec(3).max_payload_bits(1, 5) == 16


def test_codec_stage_encode_decode_and_single_packet_api():
    codec = RangeCodec(8)
    x = feature_like(2, c=3, h=10, w=6, seed=9)
    lay = PacketLayout.for_shape(x.shape[1:], 4)
    enc = codec.encode(x, lay)
    values, lost = codec.decode(enc, np.ones((2, lay.packets_per_tensor), bool), enc.side_info)
    assert not lost.any()
    q = quantize(x, 8)
    step = (q.vmax - q.vmin) / 255
    assert np.allclose(values, q.codes * step[:, None, None, None] + q.vmin[:, None, None, None])
    assert enc.ideal_bits is not None and enc.ideal_bits.shape == (2,)
    # one packet at a time: the same payload, the same codes, PayloadError on damage
    payloads, hdr, _ = enc.payloads
    batch = packetize(q.codes, lay)
    for j in (0, 5, len(hdr) - 1):
        i = int(hdr["image"][j])
        one = {k: v[i] for k, v in enc.side_info.items() if k not in ("vmin", "vmax")}
        rows = int(hdr["nrows"][j])
        payload = codec.encode_packet(batch.payload[j, :rows], one)
        assert payload == payloads.payload(j)
        assert np.array_equal(
            codec.decode_packet(payload, rows, lay.width, one), batch.payload[j, :rows]
        )
        assert codec.ideal_packet_bits(batch.payload[j, :rows], one) >= 0
        with pytest.raises(PayloadError):
            codec.decode_packet(payload + b"\x01\x02", rows, lay.width, one)


def test_whole_tensor_stream():
    codec = RangeCodec(8)
    codes = quantize(feature_like(1, c=4, seed=12), 8).codes[0]
    code = codec.encode_tensor(codes)
    assert code.bits < 8 * codes.size
    assert np.array_equal(codec.decode_tensor(code, codes.shape), codes)
