"""Which training labels are wrong: the label-noise variables that SOP learns, read as a ranked list.

SOP gives every training sample a noise variable ``s_i = u_i∘u_i∘y_i − v_i∘v_i∘(1 − y_i)`` that absorbs a wrong
label, so that the network need not fit it. With the small initialisation (1e-8) and the implicit bias of the
discrepant step sizes, ``s_i`` stays at its initial scale for a sample whose label the network can fit from the
other samples, and grows to order one for a sample whose label contradicts them. The **score** of a sample is
``‖s_i‖₂`` after training (:meth:`dopfast.sop.SOPLoss.noise`): on digits with 40% symmetric noise its median is
about 3 on wrong labels and 1e-15 on right ones, so the scores are bimodal on a log scale.

- ``indices``: all samples, highest score (most likely wrong) first;
- ``noise_rate``: the fraction of samples on the high side of the log-score split (Otsu's threshold between
  the two modes), or the caller's ``noise_rate``; ``mask`` flags that many top-scored samples;
- ``suggested_labels``: the trained network's prediction for each sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import _validate


@dataclass
class LabelIssues:
    """The ranked label issues of a training set (arrays in the input's order unless said otherwise)."""

    indices: np.ndarray  # every sample, most likely wrong label first
    scores: np.ndarray  # ‖s_i‖ per sample
    mask: np.ndarray  # flagged samples (the top noise_rate fraction)
    noise_rate: float  # the estimated (or given) fraction of wrong labels
    suggested_labels: np.ndarray  # the network's prediction per sample


def _otsu_split(values: np.ndarray) -> float:
    """The threshold between two modes of ``values`` that maximises the between-class variance."""
    v = np.sort(values)
    n = len(v)
    if n < 2 or v[0] == v[-1]:
        return float(v[-1]) if n else 0.0
    csum = np.cumsum(v)
    k = np.arange(1, n)
    w0, w1 = k / n, 1 - k / n
    mu0 = csum[:-1] / k
    mu1 = (csum[-1] - csum[:-1]) / (n - k)
    between = w0 * w1 * (mu0 - mu1) ** 2
    i = int(np.argmax(between))
    return float(0.5 * (v[i] + v[i + 1]))


def label_issues_from_scores(scores: np.ndarray, predictions: np.ndarray, noise_rate: float | None = None,
                             min_gap: float = 2.0) -> LabelIssues:
    """Rank samples by ``scores``; flag the top ``noise_rate`` fraction (estimated when None).

    The estimate splits ``log10(score)`` at Otsu's threshold; when the two sides are less than ``min_gap``
    decades apart there is no second mode and the estimated rate is 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    if noise_rate is None:
        logs = np.log10(np.maximum(scores, 1e-300))
        cut = _otsu_split(logs)
        high, low = logs[logs > cut], logs[logs <= cut]
        separated = len(high) and len(low) and np.median(high) - np.median(low) >= min_gap
        noise_rate = float(len(high) / n) if separated else 0.0
    else:
        noise_rate = _validate.real("find_label_issues", "noise_rate", noise_rate, inclusive=True, maximum=1.0)
    mask = np.zeros(n, dtype=bool)
    mask[order[: int(round(noise_rate * n))]] = True
    return LabelIssues(order, scores, mask, noise_rate, np.asarray(predictions))


@torch.no_grad()
def label_issues_from_sop(criterion, logits, noise_rate: float | None = None) -> LabelIssues:
    """Label issues from an already trained :class:`~dopfast.sop.SOPLoss` (for users with their own training
    loop): ``logits`` are the network's outputs on the training samples, in the criterion's index order."""
    scores = criterion.noise().double().cpu().numpy()
    logits = torch.as_tensor(logits)
    if logits.dim() != 2 or logits.shape[0] != len(scores):
        raise ValueError(f"label_issues_from_sop: logits must have shape ({len(scores)}, classes), got "
                         f"{tuple(logits.shape)}")
    return label_issues_from_scores(scores, logits.argmax(1).cpu().numpy(), noise_rate)


# Training for finding label issues, not for test accuracy: the network must not memorise the wrong labels
# before their v has grown, so it trains for 30 epochs with weight decay 5e-4 and v grows faster (lr_v = 300).
# Measured (F1 of the top-k at the true number k of wrong labels, seed 0) against the training defaults
# (100 epochs, no weight decay, lr_v = 100): MNIST (5,000 samples) 0.37 -> 0.91 at 20% symmetric noise,
# 0.42 -> 0.65 at 40% asymmetric; digits 0.96 -> 0.96 at 20%, 0.78 -> 0.85 at 40% asymmetric, in a third of
# the time. The cleanlab comparison (experiments/sop_label_issues.py) trains its network the same way.
TRAINING = {"epochs": 30, "weight_decay": 5e-4}
SOP_STEPS = {"lr_u": 1.0, "lr_v": 300.0}


def find_label_issues(X, y, *, noise_rate: float | None = None, model: str = "mlp", seed: int = 0, device=None,
                      verbose: bool = False, **train_kw) -> LabelIssues:
    """Train a classifier on ``(X, y)`` with SOP (features standardised; an MLP, or ``model="linear"``) and
    return its ranked label issues (see the module docstring for what the score is).

    ``y`` holds integer class labels (any integer values; they are mapped to 0..K−1 and back). Keyword
    arguments go to :func:`dopfast.sop.train.train` (``epochs``, ``weight_decay``, ``lr``, ``batch_size``,
    ``sop_kw``...) and override :data:`TRAINING` and :data:`SOP_STEPS`.
    """
    from .train import prepare_arrays, train

    _validate.choice("find_label_issues", "model", model, ("mlp", "linear"))
    x, labels, classes, _ = prepare_arrays(X, y, "find_label_issues")
    hidden = () if model == "linear" else train_kw.pop("hidden", (256, 256))
    train_kw = TRAINING | train_kw
    train_kw["sop_kw"] = SOP_STEPS | (train_kw.get("sop_kw") or {})
    res = train(x, labels, "sop", seed=seed, device=device, verbose=verbose, test_size=0.0, hidden=hidden,
                **train_kw)
    with torch.no_grad():
        res.model.eval()
        logits = res.model(torch.as_tensor(x, device=next(res.model.parameters()).device))
    issues = label_issues_from_sop(res.criterion, logits, noise_rate)
    issues.suggested_labels = classes[issues.suggested_labels]
    return issues
