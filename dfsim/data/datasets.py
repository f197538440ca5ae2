"""Datasets: the Fashion-MNIST IDX reader (default data of dfsim), image folders and
scikit-image's sample photographs, registered by name for scenarios (``data.dataset``).

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
from typing import Annotated, Literal

import numpy as np

from dfsim.errors import UserError
from dfsim.registry import DIR, Range, register

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "DFSIM_FASHION_MNIST"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class ImageSet:
    """Images (N x C x H x W uint8) with integer labels (N,); a detection dataset also
    has each image's ground-truth ``boxes`` (a float32 M x 5 array per image: x1, y1, x2,
    y2 in the model input's pixels, class index) and its ``classes`` (names by index)."""

    images: np.ndarray
    labels: np.ndarray
    name: str
    boxes: tuple[np.ndarray, ...] | None = None
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> ImageSet:
        """The first ``n`` images."""
        if n is None or n >= len(self):
            return self
        boxes = None if self.boxes is None else self.boxes[:n]
        return ImageSet(self.images[:n], self.labels[:n], f"{self.name}[:{n}]", boxes, self.classes)


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
        f"(files go to {DEFAULT_FASHION_MNIST_DIR}), or point data.dir or ${ENV_VAR} at a "
        "directory holding the IDX files"
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
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(
        data[2]
    )
    if dtype is None:
        raise UserError(f"data: {str(path)!r} has unknown IDX type code 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise UserError(
            f"data: {str(path)!r} is truncated: header says {shape}, found {arr.size} values"
        )
    return arr.reshape(shape)


def load_fashion_mnist(split: str = "test", directory: str | os.PathLike | None = None) -> ImageSet:
    """Fashion-MNIST ``split`` ('train' or 'test') as N x 1 x 28 x 28 uint8 images and labels."""
    if split not in _FILES:
        raise UserError(f"data.subset: must be 'train' or 'test', got {split!r}")
    d = fashion_mnist_dir(directory)
    img_stem, lbl_stem = _FILES[split]
    images = read_idx(_find(d, img_stem))
    labels = read_idx(_find(d, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(
            f"data: Fashion-MNIST files in {str(d)!r} have inconsistent shapes "
            f"{images.shape} / {labels.shape}"
        )
    return ImageSet(images[:, None, :, :].copy(), labels.astype(np.int64), f"fashion-mnist/{split}")


# --------------------------------------------------------------------------- image folders
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
UNLABELLED = -1  # label of an image without one: accuracy columns then report agreement only


def prepare_image(
    img: np.ndarray, input_shape: tuple[int, int, int], resize: int | None = None
) -> np.ndarray:
    """An H x W (x 3, RGB) uint8 image -> C x H x W uint8 at the model's input size: the
    shorter side resized to ``resize`` (default: the input height x 256/224, as ImageNet
    evaluation does), then a centre crop; grey or RGB as the model expects."""
    import cv2

    c, h, w = input_shape
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    side = resize or round(max(h, w) * 256 / 224)
    scale = side / min(img.shape[:2])
    size = (max(w, round(img.shape[1] * scale)), max(h, round(img.shape[0] * scale)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    img = img[top : top + h, left : left + w]
    if c == 1:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 image from a file (OpenCV)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"data.dir: cannot read image {str(path)!r}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_image_folder(
    directory, input_shape, labels: str = "folders", resize: int | None = None
) -> ImageSet:
    """Images under ``directory``: ``labels: folders`` takes class sub-folders (label =
    index of the folder name in sorted order, or the name itself when it is an integer);
    ``labels: none`` reads a flat folder of unlabelled images; ``labels: FILE.csv`` maps
    file names (relative to the directory) to class indices (``file,label`` rows).
    Files are read in sorted order, so the set is the same on every machine."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"data.dir: directory {str(d)!r} not found")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"data.dir: no images ({', '.join(IMAGE_SUFFIXES)}) under {str(d)!r}")
    if labels == "none":
        ys = [UNLABELLED] * len(files)
    elif labels == "folders":
        classes = sorted(
            {p.relative_to(d).parts[0] for p in files if len(p.relative_to(d).parts) > 1}
        )
        if not classes:
            raise UserError(
                f"data.labels: 'folders' needs class sub-folders in {str(d)!r} "
                "(or use labels: none)"
            )
        files = [p for p in files if len(p.relative_to(d).parts) > 1]
        numeric = all(c.isdigit() for c in classes)
        index = {c: (int(c) if numeric else i) for i, c in enumerate(classes)}
        ys = [index[p.relative_to(d).parts[0]] for p in files]
    else:
        mapping = _read_label_file(Path(labels))
        missing = [p for p in files if p.relative_to(d).as_posix() not in mapping]
        if missing:
            raise UserError(
                f"data.labels: {labels!r} has no label for {missing[0].relative_to(d).as_posix()!r}"
            )
        ys = [mapping[p.relative_to(d).as_posix()] for p in files]
    images = np.stack([prepare_image(read_image(p), input_shape, resize) for p in files])
    return ImageSet(images, np.asarray(ys, np.int64), f"folder:{d.name}")


def _read_label_file(path: Path) -> dict[str, int]:
    import csv

    if not path.is_file():
        raise UserError(
            f"data.labels: label file {str(path)!r} not found (or use 'folders' or 'none')"
        )
    out = {}
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or row[0].startswith("#") or (i == 0 and row[0] == "file"):
                continue
            if len(row) < 2 or not row[1].strip().lstrip("-").isdigit():
                raise UserError(
                    f"data.labels: {str(path)!r} line {i + 1}: expected 'file,class_index', "
                    f"got {row!r}"
                )
            out[row[0].strip()] = int(row[1])
    return out


# scikit-image's bundled natural photographs (no download), and crops/flips of them
SAMPLE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "ihc.png",
    "retina.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
)


def sample_photo_dir() -> Path:
    """scikit-image's bundled data directory."""
    try:
        import skimage
    except ImportError:
        raise UserError(
            "data.dataset: sample-photos needs scikit-image: pip install 'dfsim[imagenet]'"
        ) from None
    return Path(skimage.__file__).parent / "data"


def load_sample_photos(input_shape, n_images: int | None = None) -> ImageSet:
    """Natural photographs bundled in scikit-image's wheel (read from its files: nothing is
    downloaded), enlarged deterministically: each photo whole and five crops (centre and
    corners, 70 % of the shorter side), each also mirrored: 12 x 12 = 144 unlabelled images
    (accuracy columns then report agreement with the loss-free model)."""
    d = sample_photo_dir()
    views = []
    for name in SAMPLE_PHOTOS:
        img = read_image(d / name)
        h, w = img.shape[:2]
        s = int(0.7 * min(h, w))
        crops = [
            img,
            img[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2],
            img[:s, :s],
            img[:s, w - s :],
            img[h - s :, :s],
            img[h - s :, w - s :],
        ]
        for c in crops:
            views += [c, c[:, ::-1]]
    views = views[:n_images] if n_images else views
    images = np.stack([prepare_image(np.ascontiguousarray(v), input_shape) for v in views])
    return ImageSet(images, np.full(len(images), UNLABELLED, np.int64), "sample-photos")


# --------------------------------------------------------------------------- registration
# A dataset gives the images a run uses (``load``) and, where it has them, images to fit
# trained completion methods on (``training_images``). Scenarios name them in ``data``.
@register("dataset", "fashion-mnist")
class FashionMNIST:
    """Fashion-MNIST from its IDX files (``dir``, else $DFSIM_FASHION_MNIST, else the
    Debian package's directory); ``subset``: test or train."""

    def __init__(
        self, subset: Literal["train", "test"] = "test", dir: Annotated[str, DIR] | None = None
    ):  # noqa: A002 - the scenario key
        self.subset, self.dir = subset, dir

    def load(self, input_shape) -> ImageSet:
        """The images at the model's input size."""
        return load_fashion_mnist(self.subset, self.dir)

    def training_images(self, input_shape, n: int) -> ImageSet:
        """Images to fit trained methods on (None: the dataset has none)."""
        return load_fashion_mnist("train", self.dir).head(n)

    def training_id(self) -> str:
        """Names the training images in cache keys."""
        return "fashion-mnist/train"


@register("dataset", "folder")
class ImageFolder:
    """A directory of images (see :func:`load_image_folder` for ``labels`` and ``resize``)."""

    def __init__(
        self,
        dir: Annotated[str, DIR],
        labels: str = "folders",  # noqa: A002
        resize: Annotated[int, Range(1)] | None = None,
    ):
        if labels not in ("folders", "none") and not Path(labels).expanduser().is_file():
            raise ValueError(f"labels: file {labels!r} not found (or use 'folders' or 'none')")
        self.dir, self.labels, self.resize = dir, labels, resize

    def load(self, input_shape) -> ImageSet:
        """The images at the model's input size."""
        return load_image_folder(self.dir, input_shape, self.labels, self.resize)

    def training_images(self, input_shape, n: int) -> ImageSet | None:
        """Images to fit trained methods on (None: the dataset has none)."""
        return None

    def training_id(self) -> str:
        """Names the training images in cache keys."""
        return ""


@register("dataset", "sample-photos")
class SamplePhotos:
    """The photographs bundled with scikit-image, whole and cropped, each mirrored."""

    def load(self, input_shape) -> ImageSet:
        """The images at the model's input size."""
        return load_sample_photos(input_shape)

    def training_images(self, input_shape, n: int) -> ImageSet | None:
        """Images to fit trained methods on (None: the dataset has none)."""
        return None

    def training_id(self) -> str:
        """Names the training images in cache keys."""
        return ""
