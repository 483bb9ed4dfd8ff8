"""Microbenchmarks of the fused ops and pipelines against eager PyTorch and torch.compile, measured in the same
run, runnable from an installed package: ``python -m dopfast bench ops|loop|sop|rpca|dip|scaleout [--device cuda]
[--quick] [--out FILE]``. Each prints Markdown tables (the ones in bench/RESULTS.md) naming the machine, with a
one-line verdict per table."""

from __future__ import annotations

BENCHMARKS = {
    "ops": "residual_step_, dop_residual forward+backward, lowrank_step_ (GB/s against the machine's triad)",
    "loop": "rpca_dop_solve against the eager (and compiled / CUDA-graph) loop, per step",
    "sop": "the SOP loss step against cross entropy, eager, compiled and the authors' dense style",
    "rpca": "time to accuracy for robust PCA: DOP, PCP, default estimator, eager DOP, tensorly, cvxpy (CPU)",
    "dip": "DIP and DIP+DOP iterations, eager / compiled / CUDA graph, and the g/h share",
    "scaleout": "the row-sharded DOP step on 1 and 2 gloo processes, collective times, and the scale-out cost model",
}
MODULES = {"ops": "ops", "loop": "rpca_loop", "sop": "sop", "rpca": "rpca", "dip": "dip", "scaleout": "scaleout"}


def run(name: str, argv: list[str]) -> int:
    import importlib

    return importlib.import_module(f"{__name__}.{MODULES[name]}").main(argv)
