"""Runs the benchmarks on the GPU and writes their tables into bench/RESULTS.md's GPU section, naming the card.

    python bench/gpu_report.py [--results bench/RESULTS.md]

What `make gpu-check` runs after the CUDA tests. The section between the markers
``<!-- gpu-results:begin -->`` and ``<!-- gpu-results:end -->`` is replaced (the rest of the file is kept);
without a CUDA device (and dopfast's CUDA kernels) it says so and changes nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- gpu-results:begin -->", "<!-- gpu-results:end -->"
RUNS = [  # (benchmark, arguments): short runs, about 10 minutes in all on one GPU
    ("ops", ["--quick"]),
    ("loop", ["--quick"]),
    ("sop", ["--quick"]),
    ("dip", ["--quick", "--sizes", "256", "--widths", "128", "--no-compile"]),
    ("rpca", ["--sizes", "10000", "--rank", "50", "--budget", "30"]),  # goal: default ≤ 10 s to 1e-4, ≥ 5× PCP
]


def main(argv=None) -> int:
    import dopfast

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args(argv)
    if not (torch.cuda.is_available() and dopfast.has_cuda_kernels()):
        print("gpu_report: no CUDA device or no CUDA kernels in this build; the GPU benchmarks were not run")
        return 0
    card = torch.cuda.get_device_name()
    parts = [f"Measured by `make gpu-check` on **{card}**, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}.\n"]
    with tempfile.TemporaryDirectory() as tmp:
        for script, extra in RUNS:
            out = Path(tmp) / (script + ".md")
            cmd = [sys.executable, "-m", "dopfast", "bench", script, "--device", "cuda", "--out", str(out), *extra]
            print("+", " ".join(cmd), flush=True)
            done = subprocess.run(cmd, timeout=900)
            parts.append(out.read_text() if out.exists() else f"`{script}` failed (exit {done.returncode}).\n")
    text = args.results.read_text()
    if BEGIN not in text or END not in text:
        text += f"\n## GPU\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.results.write_text(head + BEGIN + "\n" + "\n".join(parts) + "\n" + END + tail)
    print(f"gpu_report: wrote the GPU section of {args.results} ({card})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
