"""DOP paper §4.2 / appendix C: image restoration from salt-and-pepper noise, DIP vs DIP-ℓ1 vs DIP+DOP.

    python experiments/dip_restore.py [--full] [--device cuda]

1. Varying corruption p = 10/30/50/70% on one image; 2. varying images at p = 50%. Reported per run: the
corrupted input's PSNR, DIP (ℓ2) and DIP-ℓ1 at their best iteration (the paper's oracle early stop) and at
the end, and DOP at the end (the paper's protocol: no early stop) and its best. Learning curves (PSNR against
iteration) show DIP-ℓ1 peaking then fitting the noise while DOP does not.
Default (CPU, a few minutes): 64² grey crops, width 32, 1000 iterations. --full: 256² colour crops, width 128,
30,000 iterations (a GPU; the paper ran 150,000). Writes dip_restore.csv, dip_restore.png (curves) and
dip_restore_images.png. The paper's numbers are on F16 (not shipped offline), so they compare only in kind.
"""

from __future__ import annotations

import time

import _common
import numpy as np

from dopfast.dip import psnr, restore, salt_and_pepper
from dopfast.dip.data import crop

PAPER_F16 = {0.1: (26.19, 36.15, 34.91), 0.3: (20.15, 33.64, 34.39), 0.5: (16.46, 29.06, 31.60),
             0.7: (13.91, 24.80, 26.99)}  # DIP / DIP-ℓ1 / DOP, appendix Fig. 5


def run_all(name, p, size, grey, iters, width, seed, device, capture):
    clean = crop(name, size, grey=grey)
    noisy = salt_and_pepper(clean, p, seed=seed)
    res = {"input": psnr(clean, noisy), "curves": {}, "images": {"clean": clean, "noisy": noisy}}
    for method in ("dip", "dip-l1", "dop"):
        t0 = time.perf_counter()
        out, hist = restore(noisy, method, iters=iters, width=width, clean=clean, seed=seed, device=device,
                            eval_every=max(iters // 40, 1), capture=capture)
        res[method] = {"last": hist["psnr"][-1], "best": hist["best_psnr"], "best_it": hist["best_iteration"],
                       "seconds": time.perf_counter() - t0}
        res["curves"][method] = (hist["psnr_iteration"], hist["psnr"])
        res["images"][method] = out
        print(f"  {name} p={p:.0%} {method:6s}: last {res[method]['last']:.2f} dB, best {res[method]['best']:.2f} "
              f"dB at {res[method]['best_it']} ({res[method]['seconds']:.0f} s)", flush=True)
    return res


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--device", default=None)
    ap.add_argument("--capture", default="none", choices=["none", "compile", "cuda-graph"])
    args = ap.parse_args()
    csv_path, png_path, img_path = _common.outputs(args, "dip_restore.csv", "dip_restore.png",
                                                   "dip_restore_images.png")
    size, grey, iters, width = (256, False, 30_000, 128) if args.full else (64, True, 1000, 32)
    base = "astronaut" if args.full else "camera"
    images = ["astronaut", "coffee", "chelsea"] if args.full else ["astronaut", "coffee"]
    runs = [(base, p) for p in (0.1, 0.3, 0.5, 0.7)] + [(im, 0.5) for im in images]
    rows, results = [], {}
    for name, p in runs:
        r = run_all(name, p, size, grey, iters, width, args.seed, args.device, args.capture)
        results[(name, p)] = r
        paper = PAPER_F16.get(p) if name == base else None
        rows.append([name, p, r["input"], r["dip"]["best"], r["dip-l1"]["best"], r["dip-l1"]["last"],
                     r["dop"]["last"], r["dop"]["best"]] + (list(paper) if paper else ["", "", ""]))
    header = ["image", "p", "input dB", "DIP best", "DIP-l1 best", "DIP-l1 last", "DOP last", "DOP best",
              "paper F16 DIP", "paper F16 DIP-l1", "paper F16 DOP"]
    _common.write_csv(csv_path, header, rows)
    print(f"\n{size}² {'grey' if grey else 'colour'}, width {width}, {iters} iterations (PSNR, dB)\n")
    print(_common.markdown_table(header, rows))

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharey=True)
    for ax, p in zip(axes, (0.1, 0.3, 0.5, 0.7)):
        r = results[(base, p)]
        for method, style in (("dip", ":"), ("dip-l1", "--"), ("dop", "-")):
            ax.plot(*r["curves"][method], style, label=method)
        ax.axhline(r["input"], color="gray", lw=0.8)
        ax.set_title(f"{base}, p = {p:.0%}")
        ax.set_xlabel("iteration")
    axes[0].set_ylabel("PSNR (dB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)

    r = results[(base, 0.5)]
    fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
    cmap = "gray" if grey else None
    for ax, key in zip(axes, ("clean", "noisy", "dip", "dip-l1", "dop")):
        ax.imshow(np.clip(r["images"][key], 0, 1), cmap=cmap, vmin=0, vmax=1)
        label = key if key in ("clean", "noisy") else f"{key} ({'best' if key != 'dop' else 'last'})"
        value = "" if key == "clean" else f"\n{psnr(r['images']['clean'], r['images'][key]):.1f} dB"
        ax.set_title(label + value, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(img_path, dpi=110)
    print(f"wrote {csv_path}, {png_path} and {img_path}")


if __name__ == "__main__":
    main()
