"""The conformance check of a codec (:class:`dfsim.stages.Codec`): :func:`check_codec` and
its properties. The tensors and layouts it runs on are in ``_codec_cases``, the
damaged-payload property in ``_codec_payloads``."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dfsim.testing._codec_cases import (
    _STRUCTURED,
    DEFAULT_CODEC_LAYOUTS,
    _codec_cases,
    _lost_for,
    _packets,
    _where,
    _whole_tensor,
)
from dfsim.testing._codec_payloads import _k_payload_errors
from dfsim.testing._common import (
    _bits_equal,
    _describe,
    _expect,
    _is_float32_array,
    _run,
    _selected,
)

CODEC_PROPERTIES = (
    "interface",
    "encode",
    "round-trip",
    "subsets",
    "lossless",
    "distortion",
    "payload-errors",
)


def _k_interface(codec, cases, cfg) -> None:
    bits = codec.side_info_bits
    _expect(
        isinstance(bits, (int, np.integer)) and not isinstance(bits, bool) and bits >= 0,
        f"side_info_bits must be an integer >= 0, got {bits!r}",
    )
    text = codec.describe_values()
    _expect(
        isinstance(text, str) and text,
        f"describe_values() must be a non-empty string, got {text!r}",
    )
    for rows, width in ((1, 1), (4, 10), (7, 3)):
        mp = codec.max_payload_bits(rows, width)
        _expect(
            mp is None or (isinstance(mp, (int, np.integer)) and mp >= 0),
            f"max_payload_bits({rows}, {width}) must be an integer >= 0 or None, got {mp!r}",
        )


def _k_encode(codec, cases, cfg) -> None:
    whole = _whole_tensor(codec)
    for lay, kind, x in cases:
        where = _where(lay, kind)
        x0 = x.copy()
        e = codec.encode(x, lay)
        _expect(_bits_equal(x, x0), f"{where}: encode modified its input")
        n, k = len(x), lay.packets_per_tensor
        _expect(e.n_images == n, f"{where}: Encoded.n_images is {e.n_images}, expected {n}")
        pb = e.payload_bits
        shaped = isinstance(pb, np.ndarray) and np.issubdtype(pb.dtype, np.integer)
        if whole:  # K fragments, K >= 1, the same K for every image
            _expect(
                shaped and pb.ndim in (1, 2) and pb.shape[-1] >= 1 and pb.shape[:-1] in ((), (n,)),
                f"{where}: payload_bits must be an integer array of the K >= 1 fragments of "
                f"one tensor (K) or of each image (N x K), got "
                f"{getattr(pb, 'dtype', type(pb).__name__)} of shape {getattr(pb, 'shape', '?')}",
            )
            k = pb.shape[-1]
        else:
            _expect(
                shaped and pb.shape in ((k,), (n, k)),
                f"{where}: payload_bits must be an integer array of the {k} packets of one "
                f"tensor (K) or of each image (N x K), got "
                f"{getattr(pb, 'dtype', type(pb).__name__)} of shape {getattr(pb, 'shape', '?')}",
            )
        _expect((pb >= 0).all(), f"{where}: negative payload_bits {pb.min()}")
        pb = np.broadcast_to(pb, (n, k))
        nrows = lay.headers()["nrows"]
        bounds = [codec.max_payload_bits(int(r), lay.width) for r in nrows]
        if not whole and all(b is not None for b in bounds):
            bound = np.array(bounds)
            over = np.flatnonzero((pb > bound).any(axis=0))
            if len(over):
                j = int(over[0])
                _expect(
                    False,
                    f"{where}: packet {j} has {int(pb[:, j].max())} payload bits, over "
                    f"max_payload_bits {int(bound[j])}",
                )
        sib = np.asarray(e.side_info_bits)
        _expect(
            np.issubdtype(sib.dtype, np.integer)
            and sib.shape in ((), (n,))
            and (sib >= 0).all()
            and (sib <= codec.side_info_bits).all(),
            f"{where}: Encoded.side_info_bits {e.side_info_bits!r} must be integers (one, or "
            f"one per image) in [0, codec.side_info_bits = {codec.side_info_bits}]",
        )
        # Side information coded into bytes (N x B, zero-padded to the longest image's)
        # holds up to the largest count, rounded up to whole bytes per array.
        sib = int(sib.max()) + 7 * len(e.side_info)
        ideal = e.ideal_bits
        _expect(
            ideal is None or (np.shape(ideal) == (n,) and np.all(np.asarray(ideal) >= 0)),
            f"{where}: Encoded.ideal_bits must be None or one non-negative number per image",
        )
        _expect(isinstance(e.side_info, dict), f"{where}: side_info must be a dict")
        carried = 0
        for name, arr in e.side_info.items():
            _expect(
                isinstance(arr, np.ndarray) and arr.ndim >= 1 and len(arr) == n,
                f"{where}: side_info[{name!r}] must be an array with one entry per image "
                f"({n}), got shape {getattr(arr, 'shape', type(arr).__name__)}",
            )
            width = arr.dtype.itemsize * 8
            if np.issubdtype(arr.dtype, np.integer) and name not in ("vmin", "vmax"):
                # integer side information may be quantizer codes: ``bits`` bits each
                width = min(width, int(getattr(codec, "bits", width)))
            carried += width * int(np.prod(arr.shape[1:], dtype=np.int64))
        _expect(
            carried <= sib,
            f"{where}: side_info holds {carried} bits per image but "
            f"side_info_bits counts only {sib - 7 * len(e.side_info)}",
        )


def _decode(codec, e, received, lay, where: str, n: int):
    values, lost = codec.decode(e, received, e.side_info)
    shape = (n, lay.channels, lay.height, lay.width)
    bad = _is_float32_array(values, shape)
    _expect(bad is None, f"{where}: decode returned values of {bad}")
    _expect(
        isinstance(lost, np.ndarray) and lost.dtype == np.bool_ and lost.shape == shape,
        f"{where}: decode's lost mask must be bool of shape {shape}",
    )
    return values, lost


def _everything(codec, e, lay):
    return np.ones((e.n_images, _packets(codec, e, lay)), bool)


def _k_round_trip(codec, cases, cfg) -> None:
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        everything = _everything(codec, e, lay)
        values, lost = _decode(codec, e, everything, lay, where, n)
        _expect(
            not lost.any(),
            f"{where}: every packet received, yet {int(lost.sum())} entries marked lost",
        )
        _expect(np.isfinite(values).all(), f"{where}: decoded values are not finite")
        again, _ = codec.decode(codec.encode(x.copy(), lay), everything, e.side_info)
        _expect(
            _bits_equal(values, again),
            f"{where}: encoding and decoding the same tensors twice gives different bits",
        )
        flat_x = x.reshape(n, -1).astype(np.float64)
        span = flat_x.max(axis=1) - flat_x.min(axis=1)
        peak = np.abs(flat_x).max(axis=1)
        scale = span if cfg["exact_constants"] else np.where(span > 0, span, peak)
        bound = cfg["tolerance"] * scale + 1e-6 * peak
        err = np.abs(values.reshape(n, -1) - flat_x).max(axis=1)
        worst = int(np.argmax(err - bound))
        if span[worst] == 0:
            hint = (
                " (an all-zero tensor must come back exactly)"
                if peak[worst] == 0
                else " (a constant tensor must come back exactly, to float precision; "
                "exact_constants=False bounds its error by tolerance x its magnitude)"
                if cfg["exact_constants"]
                else f" (magnitude {peak[worst]:.6g})"
            )
        else:
            hint = f" (value range {span[worst]:.6g})"
        _expect(
            (err <= bound).all(),
            f"{where}: image {worst} decodes with error {err[worst]:.6g}, over the bound "
            f"{bound[worst]:.6g} (tolerance {cfg['tolerance']:g}){hint}",
        )


def _k_subsets(codec, cases, cfg) -> None:
    rng = np.random.default_rng(cfg["seed"] + 7)
    whole = _whole_tensor(codec)
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        k = _packets(codec, e, lay)
        full, _ = codec.decode(e, np.ones((n, k), bool), e.side_info)
        masks = [rng.random((n, k)) < p for p in (0.2, 0.6, 0.9)] + [np.zeros((n, k), bool)]
        masks.append(np.ones((n, k), bool))
        if whole and k > 1:  # one fragment missing from each image but the last
            one = np.ones((n, k), bool)
            one[np.arange(n - 1), rng.integers(0, k, n - 1)] = False
            masks.append(one)
        for received in masks:
            values, lost = _decode(codec, e, received.copy(), lay, where, n)
            expected = _lost_for(codec, lay, received)
            shown = f"{where}, {int(received.sum())} of {n * k} packets received"
            rule = (
                "an image missing any of its fragments is lost whole, the others not at all "
                "(whole_tensor)"
                if whole
                else "the lost mask is that of the missing packets"
            )
            _expect(
                np.array_equal(lost, expected),
                f"{shown}: {rule} ({int((lost & ~expected).sum())} entries marked lost "
                f"that were not, {int((expected & ~lost).sum())} missing ones not marked)",
            )
            _expect(not np.any(values[lost] != 0), f"{shown}: lost entries are not 0")
            _expect(
                _bits_equal(values[~lost], full[~lost]),
                f"{shown}: received "
                + ("images" if whole else "rows")
                + " decode differently than with every packet ("
                + ("images" if whole else "packets")
                + " must decode independently)",
            )
            if hasattr(codec, "packet_lost"):  # the receiver counts undecodable packets by it
                flags = np.asarray(codec.packet_lost(lost, e))
                gone = ~received.all(axis=1, keepdims=True) if whole else ~received
                _expect(
                    flags.shape == (n, k) and np.array_equal(flags, np.broadcast_to(gone, (n, k))),
                    f"{shown}: packet_lost(lost) must flag exactly the packets whose values "
                    "are lost",
                )


def _k_lossless(codec, cases, cfg) -> None:
    from dfsim.codecs.raw import RawCodec

    if not getattr(codec, "lossless", False):
        return
    camera = bool(getattr(codec, "camera", False))
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        values, _ = codec.decode(e, _everything(codec, e, lay), e.side_info)
        if camera:  # the camera's 8-bit image, coded as it is: no quantizer
            expected, what = np.rint(x).astype(np.float32), "the camera's image"
        else:
            raw = RawCodec(codec.bits)
            r = raw.encode(x, lay)
            k = lay.packets_per_tensor
            expected, _ = raw.decode(r, np.ones((n, k), bool), r.side_info)
            what = f"the {codec.bits}-bit quantizer's values"
        _expect(
            _bits_equal(values, expected),
            f"{where}: a lossless codec must decode to {what} bit for bit "
            f"({int((values != expected).sum())} values differ)",
        )


def _snr_db(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per image, 10 log10(variance / MSE) of ``y`` against ``x`` (float64): how much
    closer than the best constant (the mean) the decoded values are; NaN for a constant
    tensor, inf for an exact one."""
    n = len(x)
    xf = x.reshape(n, -1).astype(np.float64)
    mse = np.mean(np.square(y.reshape(n, -1).astype(np.float64) - xf), axis=1)
    var = xf.var(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, 10 * np.log10(var / mse), np.nan)


def _k_distortion(codec, cases, cfg) -> None:
    if getattr(codec, "lossless", None) is not False:
        return  # lossless ones are held to bit-exactness ("lossless"); undeclared: neither
    floor = cfg["min_snr_db"]
    for lay, kind, x in cases:
        if kind not in _STRUCTURED:
            continue
        where = _where(lay, kind)
        e = codec.encode(x, lay)
        values, _ = codec.decode(e, _everything(codec, e, lay), e.side_info)
        snr = _snr_db(x, values)
        worst = int(np.nanargmin(np.where(np.isnan(snr), np.inf, snr)))
        if np.isnan(snr[worst]):
            continue  # constant tensors only ("round-trip" holds them exact)
        _expect(
            snr[worst] >= floor,
            f"{where}: image {worst} decodes with an SNR of {snr[worst]:.2f} dB (variance / "
            f"MSE), under the bound {floor:g} dB (min_snr_db): a lossy codec must keep the "
            "tensor's structure, not only its range",
        )


_CODEC_CHECKS = {
    "interface": _k_interface,
    "encode": _k_encode,
    "round-trip": _k_round_trip,
    "subsets": _k_subsets,
    "lossless": _k_lossless,
    "distortion": _k_distortion,
    "payload-errors": _k_payload_errors,
}


def _codec_and_label(codec, params: dict | None):
    """The codec to check (a registered name built with ``params``, or the instance) and
    the label its failures carry."""
    if isinstance(codec, str):
        from dfsim.registry import build

        return build("codec", codec, "encoding", **(params or {})), f"codec {codec!r}"
    return codec, f"codec {_describe(codec)}"


def check_codec(
    codec,
    layouts: Iterable | None = None,
    *,
    params: dict | None = None,
    features: np.ndarray | None = None,
    n_images: int = 3,
    tolerance: float = 0.5,
    exact_constants: bool = True,
    min_snr_db: float = 10.0,
    seed: int = 0,
    properties: Iterable[str] | None = None,
) -> None:
    """Check a codec (:class:`dfsim.stages.Codec`): an instance, or a registered name
    (built with ``params``).

    ``layouts``: :class:`~dfsim.transport.packets.PacketLayout` objects or ``((C, H, W),
    rows_per_packet)`` pairs (default :data:`DEFAULT_CODEC_LAYOUTS`: one channel, heights
    that are not a multiple of the packet height, both send orders). For each, batches of
    ``n_images`` tensors: feature-like, constant, all zero, maximum-entropy uniform noise
    and Gaussian noise with large outliers; ``features`` (N x C x H x W) adds your own.

    A codec with ``whole_tensor`` True codes each tensor as one codestream and sends it in
    K fragments (K >= 1, the same for every image of a batch, not the layout's packets):
    a missing fragment loses the whole tensor. The properties hold it to exactly that
    where they hold other codecs to the rows of the missing packets.

    The properties (:data:`CODEC_PROPERTIES`):

    * ``interface``: ``side_info_bits`` an integer >= 0, ``describe_values()`` a string,
      ``max_payload_bits`` an integer >= 0;
    * ``encode``: the input is not modified; ``payload_bits`` is an integer array with one
      non-negative entry per packet (per fragment), each within ``max_payload_bits`` of
      its rows; ``side_info`` has one entry per image, and ``side_info_bits`` (at most the
      codec's) counts at least the bits its arrays hold;
    * ``round-trip``: with every packet received nothing is lost, values are finite,
      decoding is bit-reproducible, and each value is within ``tolerance`` x the tensor's
      value range of the input (a lossy codec cannot return the input itself); an all-zero
      tensor comes back exactly, and so does a constant one, to float precision (with
      ``exact_constants=False``: within ``tolerance`` x its magnitude, e.g. for a
      fixed-point codec);
    * ``subsets``: any subset of packets decodes to exactly those rows, bit for bit as with
      every packet, and marks the others lost (``layout.lost_mask``) with value 0; for a
      whole-tensor codec: an image with all its fragments decodes bit for bit as with
      every packet, one missing any is lost whole. A codec with ``packet_lost`` (the
      receiver counts undecodable packets by it) flags exactly the packets whose values
      are lost;
    * ``lossless`` (codecs with ``lossless = True``): decoded values equal the uniform
      quantizer's at the codec's ``bits``, bit for bit (a codec with ``camera`` True, which
      codes the camera's 8-bit image as it is: the image itself);
    * ``distortion`` (codecs that declare ``lossless = False``): on the structured inputs
      (feature-like tensors and ``features``), every non-constant tensor decodes with
      10 log10(variance / MSE) >= ``min_snr_db`` against the input: much closer to it than
      the best constant, which a codec returning zeros, a flat or a garbled picture is not;
      the other inputs (noise) are held to ``round-trip``'s bound only;
    * ``payload-errors`` (codecs whose payloads are :class:`~dfsim.codecs.base.PacketBytes`,
      the first of a tuple or the ``bytes`` attribute of the codec's payload object):
      a packet truncated, emptied or corrupted in flight counts as lost (with its whole
      tensor, for a whole-tensor codec) while the others decode as before; and
      ``decode_packets`` given a truncated, empty, corrupted or random payload never
      raises: it flags it (``PayloadError`` in ``decode_packet``) or returns codes within
      ``bits``. A codec without ``decode_packets`` gets the damaged bytes with their
      CRC-32 recomputed (they reach its decoder): ``decode`` never raises, a truncated or
      emptied packet counts as lost, a corrupted or random one is lost or decodes to
      finite values within the quantizer's range, and what other packets hold is
      unchanged.
    """
    codec, label = _codec_and_label(codec, params)
    cases = _codec_cases(
        DEFAULT_CODEC_LAYOUTS if layouts is None else layouts, n_images, seed, features
    )
    cfg = {
        "tolerance": tolerance,
        "exact_constants": exact_constants,
        "min_snr_db": float(min_snr_db),
        "seed": seed,
    }
    for prop in _selected(properties, CODEC_PROPERTIES, "codec"):
        _run(label, prop, _CODEC_CHECKS[prop], codec, cases, cfg)
