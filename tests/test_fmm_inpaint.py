"""The numba port of OpenCV's inpainting gives the same bits as ``cv2.inpaint``
(``opencv_exact: true``; the default fills whole lost rows with the row-band kernel,
tested in test_inpaint_bands.py)."""

import cv2
import numpy as np
import pytest

from dfsim import completion
from dfsim.completion import fmm_inpaint
from dfsim.completion.inpainting import _inpaint_opencv

FLAGS = {"inpaint_ns": cv2.INPAINT_NS, "inpaint_telea": cv2.INPAINT_TELEA}


def reference(name, x, lost, radius):
    """complete() through cv2.inpaint, one tensor at a time."""
    flag = FLAGS[name]
    return np.stack(
        [np.where(m, _inpaint_opencv(t, m, radius, flag), t) for t, m in zip(x, lost, strict=True)]
    )


def check(name, x, lost, radius):
    """The batch, and each tensor on its own, equal the OpenCV reference bit for bit."""
    x = np.asarray(x, np.float32)
    x0 = x.copy()
    want = reference(name, x, lost, radius)
    m = completion.make(name, radius=radius, opencv_exact=True)
    got = m.complete_batch(x, lost)
    assert got.dtype == np.float32 and np.array_equal(x, x0)  # input untouched
    bad = got.view(np.uint32) != want.view(np.uint32)
    assert not bad.any(), f"{int(bad.sum())} of {int(lost.sum())} lost entries differ"
    for t, msk, w in zip(x[:2], lost[:2], want[:2], strict=True):
        assert np.array_equal(m.complete(t, msk).view(np.uint32), w.view(np.uint32))
    return got


def features(rng, n, shape):
    """Smooth signed fields with noise, like features."""
    c, h, w = shape
    f = rng.standard_normal((n, c, h + 4, w + 4)).astype(np.float32)
    f = sum(f[:, :, i : i + h, j : j + w] for i in range(5) for j in range(5)) / 5
    return (f + 0.2 * rng.standard_normal((n, c, h, w))).astype(np.float32)


def row_bands(rng, n, shape, rows, loss=0.33, burst=3.0):
    """Bursty loss of packets of ``rows`` full rows (two-state Markov chain per packet)."""
    c, h, w = shape
    p_bad = 1 / burst
    p_good = loss * p_bad / (1 - loss)
    packets = n * c * -(-h // rows)
    state = np.empty(packets, bool)
    s = rng.random() < loss
    for i in range(packets):
        state[i] = s
        s = rng.random() >= p_bad if s else rng.random() < p_good
    per_row = np.repeat(state.reshape(n, c, -1), rows, axis=2)[:, :, :h]
    return np.broadcast_to(per_row[..., None], (n, c, h, w)).copy()


@pytest.mark.parametrize("name", sorted(FLAGS))
@pytest.mark.parametrize(
    ("shape", "rows", "radii"),
    [((12, 28, 28), 4, (1, 2, 5, 2.5, 3.5)), ((6, 56, 56), 8, (2, 5, 0.4))],
)
def test_row_bands_match_opencv(name, shape, rows, radii):
    rng = np.random.default_rng(sum(shape) + rows)
    x = features(rng, 2, shape)
    lost = row_bands(rng, 2, shape, rows)
    h = shape[1]
    lost[0, 0, :rows] = True  # a band at the top edge
    lost[0, 1, h - rows :] = True  # and one at the bottom edge
    lost[1, 2] = True  # a channel lost entirely
    assert 0.2 < lost.mean() < 0.6
    for radius in radii:
        got = check(name, x, lost, radius)
        assert np.all(got[1, 2] == 0)
    assert not np.array_equal(got[lost], x[lost])


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_odd_masks_match_opencv(name):
    rng = np.random.default_rng(7)
    shape = (8, 13, 17)
    x = features(rng, 3, shape)
    lost = np.zeros((3, *shape), bool)
    lost[0, 0, 1:] = True  # all but the top row
    lost[0, 1, :-1] = True  # all but the bottom row
    lost[0, 2, :, 1:] = True  # all but the first column
    lost[0, 3, ::3, ::4] = True  # isolated pixels, corners included
    lost[0, 4, [0, 0, -1, -1], [0, -1, 0, -1]] = True  # the four corners only
    lost[0, 5, 6, 8] = True  # one pixel
    lost[0, 6:8, 3:9] = True
    x[0, 6] = 1.25  # a constant channel
    x[0, 7, 1:11] = -3.0  # constant in the rows handed over at radius 1 only
    lost[1] = rng.random(shape) < 0.15  # scattered
    lost[2] = rng.random(shape) < 0.6  # dense
    lost[2, 0] = False
    lost[2, 0, 5:7, 3:11] = True  # a hole inside
    # lost entries keep arbitrary values (OpenCV reads some of them at the border)
    x[lost] = (100 * rng.standard_normal(int(lost.sum()))).astype(np.float32)
    for radius in (1, 2, 3, 5, 2.5):
        got = check(name, x, lost, radius)
        assert np.all(got[0, 6][lost[0, 6]] == np.float32(1.25))
        if radius == 1:  # a constant crop: its value
            assert np.all(got[0, 7][lost[0, 7]] == np.float32(-3.0))


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_small_images_and_large_radii_match_opencv(name):
    rng = np.random.default_rng(3)
    for shape in [(3, 2, 2), (3, 2, 9), (3, 7, 2), (2, 1, 6), (2, 5, 1)]:
        x = features(rng, 2, shape)
        lost = rng.random((2, *shape)) < 0.4
        lost[:, :, 0, 0] = True
        lost[:, :, -1, -1] = False
        for radius in (1, 3):
            if min(shape[1:]) >= 2:
                check(name, x, lost, radius)
            else:  # cv2.inpaint reads outside 1-pixel-high or -wide images: no fixed result
                y = completion.make(name, radius=radius).complete_batch(x, lost)
                assert np.array_equal(y[~lost], x[~lost]) and np.isfinite(y).all()
    x = features(rng, 1, (4, 20, 24))
    lost = row_bands(rng, 1, (4, 20, 24), 2, loss=0.5)
    lost[0, 0, 8:12] = True
    for radius in (12, 150.0, 1e12):  # clamped to 100 by OpenCV; INT_MIN -> 1 for 1e12
        check(name, x, lost, radius)


def test_opencv_radius_rounding():
    want = {0.2: 1, 0.5: 1, 1.5: 2, 2.5: 2, 3.5: 4, 99.7: 100, 101: 100, 1e12: 1}
    assert {r: fmm_inpaint.cv_range(r) for r in want} == want


def test_direct_uint16_images_match_cv2_inpaint():
    """The image-level port on raw 16-bit images, saturation included."""
    rng = np.random.default_rng(11)
    for k in range(40):
        h, w = int(rng.integers(2, 16)), int(rng.integers(2, 16))
        img = rng.integers(0, 65536, (h, w)).astype(np.uint16)
        if k % 2:
            img = (np.cumsum(rng.normal(0, 4000, (h, w)), axis=k % 4 // 2) + 32768).clip(0, 65535)
            img = img.astype(np.uint16)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
        radius = float(rng.choice([1, 2, 3, 5, 2.5]))
        for telea, flag in ((True, cv2.INPAINT_TELEA), (False, cv2.INPAINT_NS)):
            want = cv2.inpaint(img, mask.astype(np.uint8), radius, flag)
            got = fmm_inpaint.inpaint_u16(img, mask, radius, telea)
            assert np.array_equal(got, want), (k, telea, radius)


@pytest.fixture(scope="module")
def real_features():
    from dfsim.codecs.raw import RawCodec
    from dfsim.data.datasets import load_fashion_mnist
    from dfsim.experiment.prepare import coded_edge_features
    from dfsim.models import load_model
    from dfsim.transport.packets import PacketLayout

    model = load_model("fmnist-resnet")
    split = model.default_split
    layout = PacketLayout.for_shape(model.crossing(split)[0].shape, 4)
    images = load_fashion_mnist("test").head(4).images
    return coded_edge_features(model, split, images, RawCodec(8), layout)


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_real_features_match_opencv(name, real_features):
    rng = np.random.default_rng(5)
    x = real_features
    assert x.shape[1:] == (32, 28, 28)
    lost = row_bands(rng, len(x), x.shape[1:], 4)
    damaged = np.where(lost, 0, x).astype(np.float32)
    for radius in (2, 5):
        check(name, damaged, lost, radius)
