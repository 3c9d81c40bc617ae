"""Datasets: the on-disk format written by ``styleavatar preprocess`` and the code that builds it."""
