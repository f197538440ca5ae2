import numpy as np
import pytest

from dfsim.transport.packets import PacketLayout, depacketize, packetize


@pytest.mark.parametrize("order", ["channel-major", "row-major"])
@pytest.mark.parametrize(
    "shape,rows", [((3, 8, 5), 4), ((4, 7, 6), 3), ((2, 5, 3), 5), ((3, 6, 2), 1), ((2, 9, 4), 4)]
)
def test_round_trip_and_mask(order, shape, rows, rng):
    n = 3
    codes = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    layout = PacketLayout.for_shape(shape, rows, order)
    pk = packetize(codes, layout)
    assert len(pk) == n * shape[0] * -(-shape[1] // rows)
    # all received, in any order: exact reassembly, nothing lost
    perm = rng.permutation(len(pk))
    out, lost = depacketize(pk.subset(perm), n, layout)
    assert np.array_equal(out, codes) and not lost.any()
    # drop a random subset: the mask is exactly the rows those packets carried
    keep = rng.random(len(pk)) > 0.4
    out, lost = depacketize(pk.subset(np.flatnonzero(keep)[::-1]), n, layout)
    expected = np.zeros_like(lost)
    for hdr in pk.header[~keep]:
        expected[hdr["image"], hdr["channel"], hdr["row"] : hdr["row"] + hdr["nrows"]] = True
    assert np.array_equal(lost, expected)
    assert np.array_equal(out[~lost], codes[~lost]) and np.all(out[lost] == 0)
    # the layout's own mapping from per-packet flags agrees with depacketize
    assert np.array_equal(layout.lost_mask(~keep), lost)


def test_short_last_packet_losses_apply():
    layout = PacketLayout.for_shape(
        (2, 10, 3), 4, "channel-major"
    )  # bands: rows 0-3, 4-7, 8-9 (short)
    hdr = layout.headers()
    assert list(hdr["nrows"]) == [4, 4, 2, 4, 4, 2]
    flags = np.zeros(6, bool)
    flags[2] = True  # the short packet of channel 0
    mask = layout.lost_mask(flags)[0]
    assert mask[0, 8:].all() and not mask[0, :8].any() and not mask[1].any()


def test_send_orders():
    cm = PacketLayout.for_shape((3, 8, 2), 4, "channel-major").headers()
    rm = PacketLayout.for_shape((3, 8, 2), 4, "row-major").headers()
    pairs = [(0, 0), (0, 4), (1, 0), (1, 4), (2, 0), (2, 4)]
    assert list(zip(cm["channel"], cm["row"], strict=True)) == pairs
    assert list(zip(rm["channel"], rm["row"], strict=True)) == sorted(pairs, key=lambda p: p[::-1])


def test_headers_identify_images():
    layout = PacketLayout.for_shape((2, 4, 2), 2)
    pk = packetize(np.zeros((3, 2, 4, 2), np.uint8), layout)
    assert list(pk.header["image"]) == [0] * 4 + [1] * 4 + [2] * 4


def test_bad_layout():
    with pytest.raises(ValueError, match="order"):
        PacketLayout.for_shape((2, 4, 2), 2, "diagonal")
    with pytest.raises(ValueError, match="rows_per_packet"):
        PacketLayout.for_shape((2, 4, 2), 0)
