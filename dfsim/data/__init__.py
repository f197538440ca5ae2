"""Data sources: the images a run classifies, detects or reconstructs.

* :mod:`~dfsim.data.datasets`: Fashion-MNIST, image folders, scikit-image's sample photographs;
* :mod:`~dfsim.data.coco`: COCO-style detection sets and their annotations;
* :mod:`~dfsim.data.scenes`: synthetic multi-object scenes built from Fashion-MNIST.
"""
