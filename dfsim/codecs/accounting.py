"""Bit accounting: the codec stage's results columns, from the encoded packets.

Per image, averaged over the run's images and summed over the tensors crossing the cut:
``bits_per_image`` (payloads plus side information, headers excluded: what the codec
produced), ``ideal_bits_per_image`` (payloads at -sum log2 p under the codec's model, plus
the same side information; empty for codecs without a model), ``kbpi`` (kbit per image),
``bpp`` (per input pixel), ``bits_per_element`` (per feature value), and the codec's time
per image to encode (once per config) and to decode what arrived (per trial), and
``feature_mse`` and ``feature_psnr_db``: the coding distortion without loss (decoded
against unquantized values: :func:`distortion`), ``coding_agreement``: the task's
label-free metric of the loss-free split model (coded) against the uncoded full model
(what coding alone changes, for data without labels), and
``undecodable_rate``: the fraction of data packets that arrived but could not be decoded
(a payload the decoder rejects, e.g. one decoded with another image's side information
under ``network.side_info.on_loss: previous``); they are lost for completion like the
ones the network lost (``realised_loss_rate``).
"""

from __future__ import annotations

import numpy as np

from dfsim.stages import Metric

METRICS = (
    Metric("bits_per_image", "coded bits per image", "", False, per="trial"),
    Metric("ideal_bits_per_image", "ideal coded bits per image", "", False, per="trial"),
    Metric("kbpi", "kbit per image", "kbit", False, per="trial"),
    Metric("bpp", "bits per input pixel", "", False, per="trial"),
    Metric("bits_per_element", "bits per feature value", "", False, per="trial"),
    Metric(
        "encode_ms_per_tensor", "encoding time per image", "ms", False, timing=True, per="trial"
    ),
    Metric(
        "decode_ms_per_tensor", "decoding time per image", "ms", False, timing=True, per="trial"
    ),
    Metric("undecodable_rate", "packets received but not decodable", "", False, per="trial"),
    Metric("feature_mse", "coding distortion (MSE)", "", False, per="trial"),
    Metric("feature_psnr_db", "coding PSNR", "dB", True, per="trial"),
    Metric(
        "coding_agreement",
        "agreement of the coded split model with the full model",
        "%",
        True,
        scale=100.0,
        per="trial",
    ),
)


def distortion(features: list[np.ndarray], decoded: list[np.ndarray], camera: bool) -> dict:
    """The coding distortion without loss: ``feature_mse``, the mean squared error of the
    decoded values against the unquantized ones (every tensor crossing the cut), and
    ``feature_psnr_db``, 10 log10(peak^2 / MSE) with the peak each tensor's own range
    (max - min, the quantizer's) averaged in squares over the images, or 255 for the
    camera's image; infinite when nothing is lost."""
    sq = sum(
        float(np.sum(np.square(d.astype(np.float64) - f, dtype=np.float64)))
        for f, d in zip(features, decoded, strict=True)
    )
    mse = sq / sum(f.size for f in features)
    if camera:
        peak2 = 255.0**2
    else:
        ranges = [f.reshape(len(f), -1) for f in features]
        peak2 = float(
            np.mean([np.mean((r.max(1).astype(np.float64) - r.min(1)) ** 2) for r in ranges])
        )
    psnr = float("inf") if mse == 0 else 10 * np.log10(peak2 / mse) if peak2 > 0 else float("nan")
    return {"feature_mse": mse, "feature_psnr_db": float(psnr)}


def coding_columns(streams, input_shape) -> dict:
    """The config's coding columns (all but the per-trial decoding time and the distortion)
    from its streams (:class:`~dfsim.experiment.prepare.TensorStream`); ``input_shape``:
    C, H, W."""
    n = streams[0].encoded.n_images
    side = sum(s.encoded.side_bits() for s in streams)
    actual = sum(s.encoded.bits_per_image() for s in streams)
    ideals = [s.encoded.ideal_bits for s in streams]
    ideal = (
        float(np.mean(sum(ideals) + side)) if all(i is not None for i in ideals) else float("nan")
    )
    bits = float(np.mean(actual))
    elements = sum(int(np.prod(s.crossing.shape)) for s in streams)
    return {
        "bits_per_image": bits,
        "ideal_bits_per_image": ideal,
        "kbpi": bits / 1e3,
        "bpp": bits / (int(input_shape[-2]) * int(input_shape[-1])),
        "bits_per_element": bits / elements,
        "encode_ms_per_tensor": 1e3 * sum(s.encoded.encode_s for s in streams) / n,
    }
