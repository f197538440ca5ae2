"""Datasets: the Fashion-MNIST IDX reader (default data of dfsim).

The IDX files come from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``). Another directory can be given in the
scenario (``data.dir``) or with the environment variable ``DFSIM_FASHION_MNIST``.
Files may be gzipped (``*.gz``) or plain.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfsim.errors import UserError

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "DFSIM_FASHION_MNIST"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class ImageSet:
    """Images (N x C x H x W uint8) with integer labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "ImageSet":
        if n is None or n >= len(self):
            return self
        return ImageSet(self.images[:n], self.labels[:n], f"{self.name}[:{n}]")


def fashion_mnist_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where to read Fashion-MNIST: argument, then $DFSIM_FASHION_MNIST, then the Debian path."""
    if directory:
        return Path(directory)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return DEFAULT_FASHION_MNIST_DIR


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"data: Fashion-MNIST file {stem}[.gz] not found in {str(directory)!r}; "
        "install it with `sudo apt-get install dataset-fashion-mnist` "
        f"(files go to {DEFAULT_FASHION_MNIST_DIR}), or point data.dir or ${ENV_VAR} at a directory holding the IDX files"
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"data: cannot read {str(path)!r}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f"data: {str(path)!r} is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise UserError(f"data: {str(path)!r} has unknown IDX type code 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise UserError(f"data: {str(path)!r} is truncated: header says {shape}, found {arr.size} values")
    return arr.reshape(shape)


def load_fashion_mnist(split: str = "test", directory: str | os.PathLike | None = None) -> ImageSet:
    """Fashion-MNIST ``split`` ('train' or 'test') as N x 1 x 28 x 28 uint8 images and labels."""
    if split not in _FILES:
        raise UserError(f"data.split: must be 'train' or 'test', got {split!r}")
    d = fashion_mnist_dir(directory)
    img_stem, lbl_stem = _FILES[split]
    images = read_idx(_find(d, img_stem))
    labels = read_idx(_find(d, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"data: Fashion-MNIST files in {str(d)!r} have inconsistent shapes {images.shape} / {labels.shape}")
    return ImageSet(images[:, None, :, :].copy(), labels.astype(np.int64), f"fashion-mnist/{split}")
