"""Shared helpers of the benchmarks: timing with torch.utils.benchmark, machine bandwidth and GEMM rate."""

from __future__ import annotations

import platform
import subprocess

import torch
import torch.utils.benchmark as tb


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
    return f"{model} ({torch.get_num_threads()} threads available)"


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


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
