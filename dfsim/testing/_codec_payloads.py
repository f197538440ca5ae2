"""The ``payload-errors`` property of :func:`dfsim.testing.check_codec`: a packet's bytes
truncated, emptied, corrupted or replaced by random bytes, caught by the CRC-32 in flight
and, with the CRC-32 recomputed, by the decoder itself."""

from __future__ import annotations

import copy

import numpy as np

from dfsim.testing._codec_cases import _lost_for, _packets, _where, _whole_tensor
from dfsim.testing._common import _bits_equal, _expect


def _packet_bytes(codec, e):
    """The PacketBytes of an encoding: the first item of a tuple of payloads, or the
    ``bytes`` attribute of the codec's own payload object (None: the codec keeps packets
    another way)."""
    from dfsim.codecs.base import PacketBytes

    p = e.payloads
    first = p[0] if isinstance(p, tuple) and p else getattr(p, "bytes", None)
    return first if isinstance(first, PacketBytes) else None


def _with_packets(e, packets):
    """``e`` with its PacketBytes replaced by ``packets`` (the rest shared)."""
    p = e.payloads
    if isinstance(p, tuple):
        p = (packets, *p[1:])
    else:
        p = copy.copy(p)
        p.bytes = packets
    return type(e)(**{**e.__dict__, "payloads": p})


def _damaged(packets, j: int, how: str, crc: str = "sent", rng=None):
    """``packets`` with packet j truncated by a byte, emptied, with a byte flipped or (with
    ``rng``) replaced by random bytes of its length; the CRC-32s as they were sent, or
    (``crc="recomputed"``) those of the damaged bytes, so that the damage gets past the
    CRC check to the decoder."""
    from dfsim.codecs.base import PacketBytes

    chunks = [packets.payload(i) for i in range(len(packets))]
    p = chunks[j]
    if how == "truncated":
        chunks[j] = p[:-1]
    elif how == "emptied":
        chunks[j] = b""
    elif how == "random":
        chunks[j] = rng.integers(0, 256, len(p), dtype=np.uint8).tobytes()
    else:
        flipped = bytearray(p)
        flipped[len(p) // 2] ^= 0x5A
        chunks[j] = bytes(flipped)
    out = PacketBytes.from_list(chunks)
    if crc == "sent":
        out.crc = packets.crc.copy()
    return out


def _k_payload_errors(codec, cases, cfg) -> None:
    rng = np.random.default_rng(cfg["seed"] + 11)
    whole = _whole_tensor(codec)
    for lay, kind, x in cases:
        where = _where(lay, kind)
        n = len(x)
        e = codec.encode(x, lay)
        packets = _packet_bytes(codec, e)
        if packets is None:
            return  # the codec does not put bytes on the wire (raw's fixed-size codes)
        k = _packets(codec, e, lay)
        everything = np.ones((n, k), bool)
        full, _ = codec.decode(e, everything, e.side_info)
        model = {key: v for key, v in e.side_info.items() if key not in ("vmin", "vmax")}
        top = (1 << codec.bits) - 1
        for j in rng.choice(len(packets), size=min(3, len(packets)), replace=False):
            payload = packets.payload(j)
            if not payload:
                continue
            received = np.ones(n * k, bool)
            received[j] = False
            unit = _lost_for(codec, lay, received.reshape(n, k))  # what packet j holds
            garbage = rng.integers(0, 256, len(payload) + 3, dtype=np.uint8).tobytes()
            for how in ("truncated", "emptied", "flipped"):
                # What arrives differs from what was sent: the packet is lost, and only it.
                e2 = _with_packets(e, _damaged(packets, j, how))
                values, lost = codec.decode(e2, everything, e.side_info)
                _expect(
                    np.array_equal(lost, unit),
                    f"{where}: packet {j} {how} in flight must count as lost, and only it"
                    + (" (with the rest of its image: whole_tensor)" if whole else ""),
                )
                _expect(
                    _bits_equal(values[~lost], full[~lost]),
                    f"{where}: packet {j} {how} in flight changed other packets' values",
                )
            if hasattr(codec, "decode_packets"):
                _decoder_never_raises(codec, packets, e, lay, where, j, garbage, model, top)
            else:
                _bad_bytes_past_crc(codec, packets, e, lay, j, unit, full, where, rng)


def _decoder_never_raises(codec, packets, e, lay, where, j, garbage, model, top) -> None:
    """A packet codec's ``decode_packets`` given a bad payload: a flag or valid codes,
    never a crash."""
    from dfsim.codecs.base import PacketBytes

    hdr = e.payloads[1]
    payload = packets.payload(j)
    for how, bad in (
        ("truncated", payload[:-1]),
        ("emptied", b""),
        ("flipped", _damaged(packets, j, "flipped").payload(j)),
        ("random", garbage),
    ):
        try:
            codes, ok = codec.decode_packets(
                PacketBytes.from_list([bad]),
                np.zeros(1, np.int64),
                hdr["nrows"][j : j + 1].astype(np.int64),
                lay.width,
                hdr["image"][j : j + 1].astype(np.int64),
                model,
            )
        except Exception as exc:  # noqa: BLE001 - the property is "never raises"
            raise AssertionError(
                f"{where}: decode_packets on a {how} payload of packet {j} raised "
                f"{type(exc).__name__}: {exc} (flag it: ok False / PayloadError)"
            ) from None
        _expect(
            not ok[0] or int(np.asarray(codes[0]).max(initial=0)) <= top,
            f"{where}: a {how} payload of packet {j} decodes to values over {top}",
        )


def _bad_bytes_past_crc(codec, packets, e, lay, j, unit, full, where, rng) -> None:
    """The codec's decoder given packet j's bytes damaged with the CRC-32 recomputed (they
    reach the decoder): never a crash; a truncated or emptied packet counts as lost (with
    what it holds: its rows, or its whole tensor); a corrupted or random one is lost or
    decodes to finite values within the quantizer's range, and nothing outside what packet
    j holds changes."""
    n = e.n_images
    everything = np.ones((n, _packets(codec, e, lay)), bool)
    img = int(np.flatnonzero(unit.reshape(n, -1).any(axis=1))[0]) if unit.any() else 0
    vmin, vmax = e.side_info.get("vmin"), e.side_info.get("vmax")
    for how in ("truncated", "emptied", "flipped", "random"):
        e2 = _with_packets(e, _damaged(packets, j, how, "recomputed", rng))
        try:
            values, lost = codec.decode(e2, everything, e.side_info)
        except Exception as exc:  # noqa: BLE001 - the property is "never raises"
            raise AssertionError(
                f"{where}: packet {j} {how} (its CRC-32 recomputed) made decode raise "
                f"{type(exc).__name__}: {exc} (count it as lost: PayloadError)"
            ) from None
        _expect(
            not (lost & ~unit).any() and _bits_equal(values[~unit], full[~unit]),
            f"{where}: packet {j} {how} (its CRC-32 recomputed) changed what other packets hold",
        )
        if how in ("truncated", "emptied"):
            _expect(
                lost[unit].all(),
                f"{where}: packet {j} {how} (its CRC-32 recomputed) must count as lost"
                + (" (its whole tensor: whole_tensor)" if _whole_tensor(codec) else ""),
            )
        got = values[unit & ~lost]
        _expect(
            np.isfinite(got).all() and not np.any(values[lost] != 0),
            f"{where}: packet {j} {how} (its CRC-32 recomputed) decodes to non-finite values "
            "or non-zero lost entries",
        )
        if vmin is not None and vmax is not None and got.size:
            lo, hi = float(vmin[img]), float(vmax[img])
            slack = 1e-6 * max(abs(lo), abs(hi), 1.0)
            _expect(
                got.min() >= lo - slack and got.max() <= hi + slack,
                f"{where}: packet {j} {how} (its CRC-32 recomputed) decodes to values outside "
                f"the quantizer's range [{lo:.6g}, {hi:.6g}]",
            )
