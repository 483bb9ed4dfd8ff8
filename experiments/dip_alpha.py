"""How DOP's learning-rate ratio α behaves across image sizes and channels (DIP + DOP, s&p 50%).

    python experiments/dip_alpha.py [--full]

The authors' loss is the mean squared residual, so the g/h step per pixel is α·lr/numel while the network's
step does not shrink with the image: the same α acts differently at 64² grey (4,096 entries) and 256² colour
(196,608). This runs DOP over α at several sizes (crops of scikit-image's astronaut, grey and colour) and
reports the last-iterate PSNR (NaN: diverged), next to the default rule's α. Default: 64² and 128², width 32,
1000 iterations;
--full: 64²/128²/256², width 64, 3000 iterations (a GPU is advisable). Writes dip_alpha.csv/.png.
"""

from __future__ import annotations

import time

import _common

from dopfast.dip import default_alpha, psnr, restore, salt_and_pepper
from dopfast.dip.data import crop


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--device", default=None)
    ap.add_argument("--alphas", type=float, nargs="+", default=None)
    args = ap.parse_args()
    csv_path, png_path = _common.outputs(args, "dip_alpha.csv", "dip_alpha.png")
    sizes = [64, 128, 256] if args.full else [64, 128]
    alphas = args.alphas or ([30, 100, 300, 1000, 3000] if args.full else [50, 150, 500])
    iters, width = (3000, 64) if args.full else (1000, 32)
    rows = []
    for size in sizes:
        for colour in (False, True):
            clean = crop("astronaut", size, grey=not colour)
            noisy = salt_and_pepper(clean, 0.5, seed=args.seed)
            for alpha in sorted(set(alphas + [round(default_alpha(clean.size), 1)])):
                t0 = time.perf_counter()
                try:
                    out, hist = restore(noisy, "dop", iters=iters, width=width, alpha=alpha, clean=clean,
                                        seed=args.seed, device=args.device, eval_every=100)
                    last, best = psnr(clean, out), hist["best_psnr"]
                except FloatingPointError:  # diverged: g, h steps beyond their stability limit
                    last = best = float("nan")
                rows.append([size, "colour" if colour else "grey", clean.size, alpha, last, best,
                             time.perf_counter() - t0])
                print(f"{size}² {'colour' if colour else 'grey'} alpha={alpha:g}: last {rows[-1][4]:.2f} dB, "
                      f"best {rows[-1][5]:.2f} dB ({rows[-1][6]:.0f} s)", flush=True)
    header = ["size", "channels", "entries", "alpha", "psnr_last", "psnr_best", "seconds"]
    _common.report(csv_path, header, rows)
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for size in sizes:
        for ch, style in (("grey", "o-"), ("colour", "s--")):
            sel = [r for r in rows if r[0] == size and r[1] == ch]
            ax.semilogx([r[3] for r in sel], [r[4] for r in sel], style, label=f"{size}² {ch}")
    ax.set_xlabel("α (g/h learning rate / network learning rate)")
    ax.set_ylabel("PSNR of the last iterate (dB)")
    ax.set_title(f"DOP, s&p 50%, width {width}, {iters} iterations")
    ax.legend(fontsize=8)
    _common.save_figure(fig, png_path, csv_path)


if __name__ == "__main__":
    main()
