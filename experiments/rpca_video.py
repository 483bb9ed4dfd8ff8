"""Background/foreground separation on a short synthetic video built from a scikit-image photo.

    python experiments/rpca_video.py [--full]

A static background (scikit-image's ``camera``, downsampled) with moving objects (a bright square, a dark
disc, a bar) is stacked as a (pixels × frames) matrix Y = background (rank 1) + foreground (sparse).
RobustPCA (DOP, U Vᵀ model) separates them; the script reports the background error and the foreground
mask's precision/recall against the objects' true masks, and saves frames / low-rank / sparse as a strip.
"""

from __future__ import annotations

import time

import _common
import numpy as np

from dopfast import RobustPCA


def synthetic_video(height: int, width: int, frames: int, seed: int = 0):
    from skimage import data, transform

    background = transform.resize(data.camera().astype(np.float64) / 255.0, (height, width), anti_aliasing=True)
    video = np.repeat(background[None], frames, axis=0)
    mask = np.zeros_like(video, dtype=bool)
    yy, xx = np.mgrid[:height, :width]
    side = max(3, height // 6)
    for t in range(frames):
        s = t / max(frames - 1, 1)
        r0, c0 = int(0.15 * height), int(s * (width - side))  # bright square moving right
        sq = (yy >= r0) & (yy < r0 + side) & (xx >= c0) & (xx < c0 + side)
        video[t][sq] = 1.0
        cy, cx = int((0.4 + 0.4 * s) * height), int((0.8 - 0.6 * s) * width)  # dark disc moving down-left
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (side // 2 + 1) ** 2
        video[t][disc] = 0.0
        bar = (xx >= int(s * (width - 2))) & (xx < int(s * (width - 2)) + 2) & (yy > height // 2)  # thin bar
        video[t][bar] = 0.9
        mask[t] = (sq | disc | bar) & (np.abs(video[t] - background) > 1e-6)
    return background, video, mask


def main() -> None:
    ap = _common.parser(__doc__)
    args = ap.parse_args()
    csv_path, png_path = _common.outputs(args, "rpca_video.csv", "rpca_video.png")
    height, width, frames = (96, 128, 60) if args.full else (48, 64, 30)
    background, video, mask = synthetic_video(height, width, frames, args.seed)
    y = video.reshape(frames, -1).T  # pixels × frames
    rows = []
    for refine in (False, True):
        t0 = time.perf_counter()
        est = RobustPCA(model="general", refine=refine, random_state=args.seed).fit(y)
        seconds = time.perf_counter() - t0
        low = est.low_rank_.T.reshape(frames, height, width)
        sparse = est.sparse_.T.reshape(frames, height, width)
        bg_err = float(np.linalg.norm(low - background[None]) / np.linalg.norm(np.repeat(background[None], frames, 0)))
        detected = np.abs(sparse) > 0.05
        precision = float((detected & mask).sum() / max(detected.sum(), 1))
        recall = float((detected & mask).sum() / max(mask.sum(), 1))
        rows.append(["dop+refine" if refine else "dop", est.n_iter_, round(seconds, 2), bg_err, precision, recall,
                     getattr(est, "rank_", "")])
        print(f"refine={refine}: {est.n_iter_} steps in {seconds:.1f} s, background error {bg_err:.2e}, "
              f"foreground precision {precision:.3f} recall {recall:.3f}", flush=True)
    header = ["method", "steps", "seconds", "background_rel_err", "fg_precision", "fg_recall", "rank"]
    _common.report(csv_path, header, rows)
    plt = _common.pyplot()
    show = np.linspace(0, frames - 1, 5).astype(int)
    fig, axes = plt.subplots(3, len(show), figsize=(2.2 * len(show), 5.4))
    for j, t in enumerate(show):
        for i, (img, title) in enumerate(((video[t], "frame"), (low[t], "low-rank (background)"),
                                          (np.abs(sparse[t]), "|sparse| (foreground)"))):
            axes[i, j].imshow(img, cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(title, fontsize=8)
        axes[0, j].set_title(f"t = {t}", fontsize=8)
    _common.save_figure(fig, png_path, csv_path, dpi=110)


if __name__ == "__main__":
    main()
