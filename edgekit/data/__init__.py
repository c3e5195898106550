"""Labelled and unlabeled text for training and evaluation.

numpy only: importing this package never imports TensorFlow, and the optional
``datasets`` package is imported only when a recipe uses ``format: hf``.
"""

from edgekit.data.dataset import TextDataset
from edgekit.data.readers import SPLITS, load_split, load_splits, load_unlabeled

__all__ = ["SPLITS", "TextDataset", "load_split", "load_splits", "load_unlabeled"]
