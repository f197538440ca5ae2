import gzip
import struct

import numpy as np
import pytest

from dfsim.data.datasets import load_fashion_mnist, read_idx
from dfsim.errors import UserError


def write_idx(path, arr, gz=True):
    code = {np.uint8: 0x08}[arr.dtype.type]
    data = (
        bytes([0, 0, code, arr.ndim])
        + b"".join(struct.pack(">I", d) for d in arr.shape)
        + arr.tobytes()
    )
    (gzip.open if gz else open)(path, "wb").write(data)


def test_reads_idx_from_a_directory_given_by_env(tmp_path, monkeypatch):
    imgs = np.arange(3 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(3, 28, 28)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([4, 0, 9], np.uint8), gz=False)
    monkeypatch.setenv("DFSIM_FASHION_MNIST", str(tmp_path))
    s = load_fashion_mnist("test")
    assert s.images.shape == (3, 1, 28, 28) and np.array_equal(s.images[:, 0], imgs)
    assert list(s.labels) == [4, 0, 9]


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", tmp_path)


def test_truncated_file(tmp_path):
    p = tmp_path / "x.gz"
    gzip.open(p, "wb").write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(UserError, match="truncated"):
        read_idx(p)


def test_real_fashion_mnist_test_split():
    s = load_fashion_mnist("test")
    assert s.images.shape == (10_000, 1, 28, 28) and s.images.dtype == np.uint8
    assert np.bincount(s.labels).tolist() == [1000] * 10
