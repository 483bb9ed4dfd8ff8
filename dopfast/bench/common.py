"""Shared helpers of the benchmarks: timing with torch.utils.benchmark, machine bandwidth and GEMM rate."""

from __future__ import annotations

import platform
import subprocess

import torch
import torch.utils.benchmark as tb

from .._report import markdown_table


def time_us(fn, min_run_time: float = 0.5) -> float:
    """Median microseconds per call of fn() (CUDA-synchronised by torch.utils.benchmark)."""
    fn()  # warm-up (allocations, compilation)
    m = tb.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time)
    return m.median * 1e6


def machine_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001 - informational only
        model = platform.processor()
    return model


def bandwidth_gbs(numel: int, device: str, dtype=torch.float32) -> dict[str, float]:
    """Copy (a = b) and triad (a = b + s*c) bandwidth at this size, in GB/s, counting bytes read + written."""
    b = torch.rand(numel, device=device, dtype=dtype)
    c = torch.rand(numel, device=device, dtype=dtype)
    a = torch.empty_like(b)
    size = b.element_size() * numel
    copy = time_us(lambda: a.copy_(b))
    triad = time_us(lambda: torch.add(b, c, alpha=0.5, out=a))
    return {"copy": 2 * size / copy / 1e3, "triad": 3 * size / triad / 1e3}


def gemm_gflops(n: int, device: str, dtype=torch.float64) -> float:
    a = torch.rand(n, n, device=device, dtype=dtype)
    b = torch.rand(n, n, device=device, dtype=dtype)
    c = torch.empty_like(a)
    return 2 * n**3 / time_us(lambda: torch.mm(a, b, out=c)) / 1e3


table = markdown_table


def bench_parser(doc: str, threads=(1, 2)):
    """The options every benchmark takes: --device, --threads, --quick, --out."""
    import argparse
    from pathlib import Path

    usage = next((line.split() for line in doc.splitlines() if "python -m dopfast bench" in line), None)
    ap = argparse.ArgumentParser(prog=" ".join(usage[:5]) if usage else None, description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, nargs="+", default=list(threads), help="CPU thread counts to run")
    ap.add_argument("--quick", action="store_true", help="shorter timing runs")
    ap.add_argument("--out", type=Path, help="also write the Markdown to this file (refuses to overwrite)")
    return ap


def verdict(what: str, rows: list[list], columns: dict[str, int]) -> str:
    """A one-line summary of a table: the range of each named ratio column over its rows."""
    parts = []
    for name, col in columns.items():
        values = [float(r[col]) for r in rows if isinstance(r[col], (int, float))]
        if values:
            parts.append(f"{min(values):.2g}–{max(values):.2g}× {name}" if len(values) > 1 else
                         f"{values[0]:.2g}× {name}")
    return f"**Verdict** ({what}): " + ", ".join(parts) + "."


def parse(ap, argv=None):
    """Parse and check: a CUDA run needs a GPU and the CUDA kernels; --out is never overwritten."""
    from .. import has_cuda_kernels

    args = ap.parse_args(argv)
    if args.device == "cuda" and not (torch.cuda.is_available() and has_cuda_kernels()):
        ap.error("--device cuda needs a GPU and dopfast's CUDA kernels")
    if args.out is not None and args.out.exists():
        ap.error(f"--out {args.out} exists; choose another file or remove it first")
    return args


def thread_counts(args) -> list[int]:
    """The CPU thread counts to run (on CUDA, just the current setting)."""
    return args.threads if args.device == "cpu" else [torch.get_num_threads()]


def show(texts: list[str], text: str) -> None:
    """Print one table's Markdown now (a long run reports as it goes) and keep it for emit()."""
    print(text, flush=True)
    texts.append(text)


def emit(args, texts: list[str]) -> None:
    if args.out is not None:
        args.out.write_text("\n".join(texts))
