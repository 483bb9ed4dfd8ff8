"""DIP pipeline: the skip network, corruption, restoration, checkpoint/resume, CLI."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from dopfast.dip import SkipNet, noise_input, psnr, restore, salt_and_pepper
from dopfast.dip.data import crop


@pytest.fixture(scope="module")
def small():
    clean = crop("camera", 32, grey=True)
    return clean, salt_and_pepper(clean, 0.5, seed=0)


def test_skipnet_shapes_and_determinism():
    for (h, w), c in (((64, 64), 3), ((40, 50), 1)):
        torch.manual_seed(0)
        a = SkipNet(c, width=8)
        torch.manual_seed(0)
        b = SkipNet(c, width=8)
        z = noise_input(a, h, w, torch.Generator().manual_seed(0))
        assert z.shape == (1, 32, 64, 64)
        out_a, out_b = a(z, (h, w)), b(z, (h, w))
        assert out_a.shape == (1, c, h, w) and torch.equal(out_a, out_b)
        assert 0 < float(out_a.detach().min()) and float(out_a.detach().max()) < 1
    with pytest.raises(ValueError, match="width must be a positive int"):
        SkipNet(3, width=0)


def test_salt_and_pepper_ratio():
    clean = np.full((200, 200, 3), 0.5)
    noisy = salt_and_pepper(clean, 0.3, seed=1)
    changed = noisy != clean
    assert abs(changed.mean() - 0.3) < 0.01
    assert set(np.unique(noisy[changed])) == {0.0, 1.0}
    with pytest.raises(ValueError, match="amount must be in"):
        salt_and_pepper(clean, 1.5)


def test_dop_restores_far_above_the_corrupted_input(small):
    clean, noisy = small
    out, hist = restore(noisy, "dop", iters=300, width=16, clean=clean, eval_every=50)
    assert out.shape == clean.shape
    assert psnr(clean, out) > psnr(clean, noisy) + 8
    assert len(hist["psnr"]) == 6 and hist["iteration"][-1] == 300


def test_dip_l1_reports_best_iterate(small):
    clean, noisy = small
    out, hist = restore(noisy, "dip-l1", iters=100, width=8, clean=clean, eval_every=20)
    assert psnr(clean, out) == pytest.approx(hist["best_psnr"], abs=1e-9)


def test_colour_input_keeps_its_shape():
    clean = crop("astronaut", 32)
    out, _ = restore(salt_and_pepper(clean, 0.3), "dop", iters=5, width=8, eval_every=5)
    assert out.shape == (32, 32, 3) and out.dtype == np.float64


def test_checkpoint_resume_equals_uninterrupted(small, tmp_path):
    clean, noisy = small
    full, _ = restore(noisy, "dop", iters=40, width=8, clean=clean, eval_every=10)
    ckpt = tmp_path / "run.pt"

    def interrupt(it, img, hist):
        if it == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore(noisy, "dop", iters=40, width=8, clean=clean, eval_every=10, checkpoint=ckpt,
                checkpoint_every=15, callback=interrupt)
    assert torch.load(ckpt, weights_only=True)["iteration"] == 20
    resumed, hist = restore(noisy, "dop", iters=40, width=8, clean=clean, eval_every=10, checkpoint=ckpt,
                            resume=True)
    np.testing.assert_array_equal(resumed, full)
    assert hist["iteration"] == [10, 20, 30, 40]
    with pytest.raises(FileExistsError, match="pass resume=True"):
        restore(noisy, "dop", iters=40, width=8, checkpoint=ckpt)
    with pytest.raises(ValueError, match="was written with"):
        restore(noisy, "dip", iters=40, width=8, checkpoint=ckpt, resume=True)


def test_ctrl_c_finishes_the_iteration_then_checkpoints(small, tmp_path):
    import os
    import signal

    clean, noisy = small
    full, _ = restore(noisy, "dop", iters=30, width=8, eval_every=10)
    ckpt = tmp_path / "sigint.pt"

    def press_ctrl_c(it, img, hist):
        if it == 10:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the callback runs; honoured after iteration 10

    with pytest.raises(KeyboardInterrupt):
        restore(noisy, "dop", iters=30, width=8, eval_every=10, checkpoint=ckpt, callback=press_ctrl_c)
    assert torch.load(ckpt, weights_only=True)["iteration"] == 10
    resumed, _ = restore(noisy, "dop", iters=30, width=8, eval_every=10, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(resumed, full)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"method": "tv"}, ValueError, "method must be one of"),
    ({"iters": 0}, ValueError, "iters must be a positive int"),
    ({"alpha": float("inf")}, ValueError, "alpha must be a positive finite number"),
    ({"image": np.ones((8, 8), dtype=np.uint8)}, TypeError, "float array"),
    ({"image": np.full((8, 8), 2.0)}, ValueError, r"within \[0, 1\]"),
    ({"image": np.ones(8)}, ValueError, "H×W or H×W×C"),
    ({"clean": np.ones((9, 9))}, ValueError, "clean must have the image's shape"),
])
def test_restore_errors(kwargs, exc, match):
    args = {"image": np.ones((8, 8))} | kwargs
    image = args.pop("image")
    with pytest.raises(exc, match=match):
        restore(image, **args)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dopfast", "dip", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_runs_on_a_sample_image(tmp_path):
    out = tmp_path / "out.png"
    done = _cli("camera", "--crop", "32", "--noise", "0.5", "--iters", "20", "--width", "8", "--out", str(out),
                "--quiet")
    assert done.returncode == 0, done.stderr
    assert "restored PSNR" in done.stdout and out.exists()
    again = _cli("camera", "--crop", "32", "--iters", "2", "--width", "8", "--out", str(out), "--quiet")
    assert again.returncode != 0 and "exists" in again.stderr


@pytest.mark.parametrize("args,needle", [
    (["no_such_file.png"], "neither an existing file"),
    (["camera", "--noise", "1.5"], "--noise"),
    (["camera", "--method", "tv"], "--method"),
])
def test_cli_errors(args, needle):
    done = _cli(*args)
    assert done.returncode != 0 and needle in done.stderr


def test_resume_edge_cases(small, tmp_path):
    clean, noisy = small
    ckpt = tmp_path / "run.pt"
    full, _ = restore(noisy, "dop", iters=12, width=8, eval_every=4, checkpoint=ckpt)
    again, hist = restore(noisy, "dop", iters=12, width=8, eval_every=4, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(again, full)  # a finished run resumes to its last iterate, not net(z0)
    assert hist["iteration"] == [4, 8, 12]
    with pytest.raises(ValueError, match="at iteration 12, beyond iters=8"):
        restore(noisy, "dop", iters=8, width=8, eval_every=4, checkpoint=ckpt, resume=True)
    assert torch.load(ckpt, weights_only=True)["iteration"] == 12  # and the checkpoint is untouched
    other = np.clip(noisy[::-1].copy(), 0, 1)
    with pytest.raises(ValueError, match="another image"):
        restore(other, "dop", iters=12, width=8, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        restore(noisy, "dop", iters=2, width=8, resume=True)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/dopfast-checkpoint-payload-ran",))


def test_checkpoints_are_data_only(small, tmp_path):
    import os

    _, noisy = small
    crafted = tmp_path / "crafted.pt"
    torch.save({"config": {}, "iteration": 0, "payload": _Payload()}, crafted)
    for path, content in ((crafted, None), (tmp_path / "empty.pt", b""), (tmp_path / "text.pt", b"hello")):
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ValueError, match=str(path.name)):
            restore(noisy, "dop", iters=2, width=8, checkpoint=path, resume=True)
    assert not os.path.exists("/tmp/dopfast-checkpoint-payload-ran")


def test_unusable_checkpoint_paths_fail_before_running(small, tmp_path):
    _, noisy = small
    with pytest.raises(FileNotFoundError, match="does not exist"):
        restore(noisy, "dop", iters=2, width=8, checkpoint=tmp_path / "missing" / "run.pt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        restore(noisy, "dop", iters=2, width=8, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="levels=12"):
        restore(noisy[:8, :8], "dop", iters=2, width=8, levels=12)
    with pytest.raises(ValueError, match="eval_every must be a positive int"):
        restore(noisy, "dop", iters=2, width=8, eval_every=0)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        restore(noisy, "dop", iters=2, width=8, lr=0)


def test_compiled_step_matches_eager():
    from dopfast.dip.step import Stepper

    torch._dynamo.reset()
    outs = []
    for capture in ("none", "compile"):
        torch.manual_seed(0)
        y = torch.rand(1, 1, 16, 16)
        net = SkipNet(1, width=4, skip=2, levels=2)
        z0 = noise_input(net, 16, 16, torch.Generator().manual_seed(0))
        g = torch.nn.Parameter(1e-5 * torch.randn_like(y))
        h = torch.nn.Parameter(1e-5 * torch.randn_like(y))
        stepper = Stepper(net, z0, g, h, y, (16, 16), "dop", 0.5, 20.0, 1 / 30, torch.Generator().manual_seed(1),
                          capture)
        losses = [float(stepper.step()[1]) for _ in range(3)]
        outs.append((losses, g.detach().clone()))
    assert outs[0][0] == pytest.approx(outs[1][0], rel=1e-4)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("args,needle", [
    (["camera", "--out", "{tmp}"], "is a directory"),
    (["camera", "--out", "{tmp}/x.png", "--checkpoint", "{tmp}/x.png"], "same file"),
    (["camera", "--resume"], "--resume needs --checkpoint"),
    (["camera", "--checkpoint", "{tmp}/missing/run.pt"], "does not exist"),
    (["camera", "--out", "{tmp}/x.gifx"], "unknown image extension"),
    (["camera", "--out", "{tmp}/missing/x.png"], "does not exist"),
    (["{tmp}/notes.txt"], "cannot be read as an image"),
    (["camera", "--device", "foo"], "--device"),
    (["camera", "--iters", "0"], "--iters"),
])
def test_cli_checks_before_running(args, needle, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    done = _cli(*(a.format(tmp=tmp_path) for a in args), "--iters" if "--iters" not in args else "--quiet",
                *(["1"] if "--iters" not in args else []), "--quiet")
    assert done.returncode != 0 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_cli_reads_grey_alpha_png(tmp_path):
    from skimage import io

    img = np.zeros((16, 16, 2), dtype=np.uint8)
    img[..., 0] = np.arange(16, dtype=np.uint8)[:, None] * 16
    img[..., 1] = 255
    path = tmp_path / "la.png"
    io.imsave(path, img, check_contrast=False)
    done = _cli(str(path), "--iters", "2", "--width", "4", "--quiet", "--out", str(tmp_path / "o.png"))
    assert done.returncode == 0, done.stderr
