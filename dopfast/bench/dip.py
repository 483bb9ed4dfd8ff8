"""Per-iteration cost of DIP+DOP against plain DIP, eager and captured, and of the fused residual in it.

    python -m dopfast bench dip [--device cpu|cuda] [--sizes 64 128 256] [--widths 32 128] [--out FILE]

For each image size (colour, s&p input) and network width: milliseconds per iteration of DIP (ℓ2 loss) and
DOP (fused ``dop_residual`` + the g/h SGD step), for every capture mode available on the device (eager,
``torch.compile`` of the network, and on CUDA the whole iteration as one CUDA graph), and the share of the
DOP iteration spent on the g/h part: (DOP − DIP) / DOP, which carries the noise of two network timings, and
the loss heads timed alone (DOP's residual + g/h step minus DIP's loss, from a fixed network output).
Then ``dop_residual`` forward + backward alone at
the image's size against eager PyTorch and ``torch.compile``.
"""

from __future__ import annotations

import torch

from .. import ops, reference
from ..dip import SkipNet, noise_input
from ..dip.step import Stepper
from .common import bench_parser, emit, machine_name, parse, table, thread_counts, time_us, verdict


def iteration_ms(size, width, method, capture, device, min_time):
    torch.manual_seed(0)
    y = torch.rand(1, 3, size, size, device=device)
    net = SkipNet(3, width=width).to(device)
    z0 = noise_input(net, size, size, torch.Generator().manual_seed(0), device)
    g = torch.nn.Parameter(1e-5 * torch.randn_like(y))
    h = torch.nn.Parameter(1e-5 * torch.randn_like(y))
    gen = torch.Generator(device=device).manual_seed(0)
    stepper = Stepper(net, z0, g, h, y, (size, size), method, 1.0, 500.0, 1 / 30, gen, capture)
    for _ in range(3):  # compile / capture / allocator warm-up
        stepper.step()
    return time_us(stepper.step, min_time) / 1e3


def head_us(size, method, device, min_time):
    """The loss head alone, from a leaf network output: DOP's fused residual + g/h gradients + g/h SGD step,
    or DIP's squared error; the difference is DOP's extra cost per iteration, free of the network's noise."""
    out = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    y = torch.rand(1, 3, size, size, device=device)
    g = torch.nn.Parameter(1e-5 * torch.randn_like(y))
    h = torch.nn.Parameter(1e-5 * torch.randn_like(y))
    opt = torch.optim.SGD([g, h], lr=500.0)

    def dop():
        opt.zero_grad(set_to_none=True)
        r = ops.dop_residual(out, g, h, y)
        (r * r).mean().backward()
        opt.step()

    def dip():
        ((out - y) ** 2).mean().backward()

    return time_us(dop if method == "dop" else dip, min_time)


def residual_row(size, device, min_time):
    shape = (1, 3, size, size)
    x, g, h, y = (torch.randn(shape, device=device) for _ in range(4))
    x, g, h = (t.requires_grad_() for t in (x, g, h))
    grad = torch.ones(shape, device=device)
    compiled = torch.compile(reference.dop_residual)

    def run(fn):
        return lambda: torch.autograd.grad(fn(x, g, h, y), (x, g, h), grad)

    t = {k: time_us(run(f), min_time) for k, f in
         (("ours", ops.dop_residual), ("eager", reference.dop_residual), ("compiled", compiled))}
    return [f"3×{size}²", t["ours"], t["eager"], t["compiled"], t["eager"] / t["ours"], t["compiled"] / t["ours"]]


def main(argv=None) -> int:
    ap = bench_parser(__doc__, threads=(torch.get_num_threads(),))
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--widths", type=int, nargs="+", default=None)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (slow to compile)")
    args = parse(ap, argv)
    torch.set_num_threads(thread_counts(args)[0])
    widths = args.widths or ([128] if args.device == "cuda" else [32])
    captures = ["none"] + ([] if args.no_compile else ["compile"]) + (["cuda-graph"] if args.device == "cuda" else [])
    min_time = 0.3 if args.quick else 1.0
    rows = []
    for size in args.sizes:
        for width in widths:
            for capture in captures:
                dip = iteration_ms(size, width, "dip", capture, args.device, min_time)
                dop = iteration_ms(size, width, "dop", capture, args.device, min_time)
                extra = (head_us(size, "dop", args.device, min_time) - head_us(size, "dip", args.device, min_time))
                rows.append([f"3×{size}²", width, capture, dip, dop, (dop - dip) / dop, extra / 1e3 / dop])
                print(" | ".join(str(v) for v in rows[-1]), flush=True)
    residual_rows = [residual_row(s, args.device, 0.5) for s in args.sizes]
    text = (f"### DIP iterations, {machine_name(args.device)}, torch {torch.__version__}\n\n" +
            table(["image", "width", "capture", "DIP ms/it", "DOP ms/it", "(DOP − DIP) / DOP",
                   "g/h head alone / DOP"], rows) + "\n\n" +
            verdict("DOP's g/h part, as a share of a DOP iteration", rows, {"": 6}).replace("× ", "") + "\n\n" +
            "**dop_residual forward + backward**\n\n" +
            table(["shape", "ours µs", "eager µs", "compiled µs", "× eager", "× compiled"], residual_rows) + "\n\n" +
            verdict("dop_residual forward + backward", residual_rows, {"eager": 4, "torch.compile": 5}) + "\n")
    print(text)
    emit(args, [text])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
