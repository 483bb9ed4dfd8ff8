"""The command line's demo (what `make demo` runs) and its top-level errors."""

import re
import subprocess
import sys

import numpy as np
import pytest


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dopfast", *args], capture_output=True, text=True, timeout=300)


def test_demo_prints_a_small_recovery_error():
    done = _run("demo", "--iters", "3000")
    assert done.returncode == 0, done.stderr
    assert re.search(r"tau=1e-4, alpha=sqrt\(n\), 3000 steps", done.stdout)  # --iters drives the paper's run
    err = float(re.search(r"relative recovery error .* = ([0-9.e+-]+)", done.stdout).group(1))
    assert err < 1e-4


@pytest.mark.parametrize("args,needle", [
    (["fit"], "invalid choice"),
    (["demo", "--n", "0"], "argument --n: expected a positive int, got '0'"),
    (["demo", "--rank", "9", "--n", "4"], "--rank 9 is larger than --n 4"),
    (["demo", "--corruption", "1.5"], "argument --corruption: expected a number in [0, 1]"),
    (["sop", "--seed", "-1"], "argument --seed: expected an int >= 0"),
    (["sop", "--device", "foo"], "argument --device: expected a device such as 'cpu' or 'cuda'"),
    (["sop", "--dat", "x.npz"], "unrecognized arguments: --dat"),  # no abbreviations (--data vs --dataset)
])
def test_bad_flags(args, needle):
    done = _run(*args)
    assert done.returncode == 2 or "error:" in done.stderr
    assert done.returncode != 0 and needle in done.stderr, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr


def _frames(folder, n=12, h=16, w=20):
    from skimage import io

    folder.mkdir()
    rng = np.random.default_rng(0)
    background = rng.uniform(0.2, 0.8, (h, w))
    for t in range(n):
        frame = background.copy()
        frame[4:8, t:t + 4] = 1.0  # a moving bright block
        io.imsave(folder / f"f{t:02d}.png", (frame * 255).astype(np.uint8), check_contrast=False)


def test_rpca_cli_on_npy_csv_and_frames(tmp_path):
    from dopfast.rpca import rpca_problem

    x, _, y = rpca_problem(30, 2, 0.05, seed=0, m=40)
    np.save(tmp_path / "y.npy", y.numpy())
    np.savetxt(tmp_path / "y.csv", y.numpy(), delimiter=",")
    for name in ("y.npy", "y.csv"):
        out = tmp_path / f"out_{name}"
        done = _run("rpca", str(tmp_path / name), "--out", str(out), "--quiet")
        assert done.returncode == 0, done.stderr
        low = np.load(out / "low_rank.npy")
        assert np.linalg.norm(low - x.numpy()) / np.linalg.norm(x.numpy()) < 1e-4
    again = _run("rpca", str(tmp_path / "y.npy"), "--out", str(tmp_path / "out_y.npy"), "--quiet")
    assert again.returncode != 0 and "--overwrite" in again.stderr
    _frames(tmp_path / "frames")
    done = _run("rpca", str(tmp_path / "frames"), "--out", str(tmp_path / "fo"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fo" / "background.png").exists() and np.load(tmp_path / "fo" / "sparse.npy").shape == (320, 12)


@pytest.mark.parametrize("make,needle", [
    (lambda p: np.save(p / "a.npy", np.array([[1.0, np.nan], [0.0, 1.0]])), "mask needs method='dop'"),
    (lambda p: (p / "a.txt").write_text("x"), "expected .npy, .npz, .csv"),
    (lambda p: (p / "a.csv").write_text("1,2\n3\n"), "cannot be read"),
    (lambda p: np.save(p / "a.npy", np.ones(5)), "must be a non-empty matrix"),
])
def test_rpca_cli_errors(tmp_path, make, needle):
    make(tmp_path)
    name = next(p.name for p in tmp_path.iterdir())
    method = ["--method", "pcp"] if "method" in needle else []
    done = _run("rpca", str(tmp_path / name), "--out", str(tmp_path / "o"), "--quiet", *method)
    assert done.returncode != 0 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_rpca_cli_missing_entries_from_nan_or_a_mask(tmp_path):
    from dopfast.rpca import rpca_problem

    x, _, y = rpca_problem(30, 2, 0.05, seed=0, m=40)
    missing = np.random.default_rng(1).random(y.shape) < 0.05
    np.save(tmp_path / "nan.npy", np.where(missing, np.nan, y.numpy()))
    done = _run("rpca", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "o1"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"{int(missing.sum())} NaN entries: taken as missing" in done.stdout
    low = np.load(tmp_path / "o1" / "low_rank.npy")
    assert np.linalg.norm((low - x.numpy())[missing]) / np.linalg.norm(x.numpy()[missing]) < 1e-4
    assert np.all(np.load(tmp_path / "o1" / "sparse.npy")[missing] == 0)
    np.save(tmp_path / "y.npy", y.numpy())
    np.savetxt(tmp_path / "mask.csv", (~missing).astype(int), delimiter=",", fmt="%d")
    done = _run("rpca", str(tmp_path / "y.npy"), "--mask", str(tmp_path / "mask.csv"), "--out", str(tmp_path / "o2"),
                "--quiet")
    assert done.returncode == 0, done.stderr
    assert np.linalg.norm(np.load(tmp_path / "o2" / "low_rank.npy") - low) <= 1e-8 * np.linalg.norm(low)
    np.save(tmp_path / "bad.npy", np.ones((3, 3)))
    done = _run("rpca", str(tmp_path / "y.npy"), "--mask", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o3"))
    assert done.returncode != 0 and "has shape (3, 3), INPUT has (40, 30)" in done.stderr
    np.save(tmp_path / "two.npy", 2 * np.ones(y.shape))
    done = _run("rpca", str(tmp_path / "y.npy"), "--mask", str(tmp_path / "two.npy"), "--out", str(tmp_path / "o4"))
    assert done.returncode != 0 and "must hold only 0/1" in done.stderr
