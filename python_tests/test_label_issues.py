"""Label issues found by SOP (dopfast.sop.find_label_issues), training on a user's arrays, and the sop --data
command line."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from dopfast.sop.data import add_label_noise, load_classification  # noqa: E402
from dopfast.sop.label_issues import find_label_issues, label_issues_from_scores  # noqa: E402
from dopfast.sop.train import train  # noqa: E402


def _blobs(n=300, k=3, flip=0.15, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = 6 * rng.normal(size=(k, 5))
    x = centres[y] + rng.normal(size=(n, 5))
    wrong = rng.random(n) < flip
    given = np.where(wrong, (y + rng.integers(1, k, n)) % k, y)
    return x, 10 * given + 7, wrong, 10 * y + 7  # labels need not be 0..K-1


def test_wrong_labels_rank_first_on_a_constructed_case():
    x, given, wrong, truth = _blobs()
    issues = find_label_issues(x, given, model="linear", epochs=40, seed=0)
    k = int(wrong.sum())
    assert wrong[issues.indices[:k]].mean() >= 0.9
    assert abs(issues.noise_rate - wrong.mean()) <= 0.05
    assert (issues.suggested_labels[wrong] == truth[wrong]).mean() >= 0.9  # the labels' own values come back
    assert issues.scores.shape == (len(x),) and issues.mask.sum() == round(issues.noise_rate * len(x))


def test_noise_rate_estimate_on_digits():
    x, y = load_classification("digits")
    noisy = add_label_noise(y, "sym", 0.4, 10, seed=0)
    issues = find_label_issues(x, noisy, seed=0)
    assert abs(issues.noise_rate - (noisy != y).mean()) <= 0.05


def test_given_noise_rate_and_no_second_mode():
    scores = np.array([1e-15, 2e-15, 3.0, 1e-15, 2.5])
    issues = label_issues_from_scores(scores, np.zeros(5, dtype=int), noise_rate=0.4)
    assert issues.mask.tolist() == [False, False, True, False, True] and issues.indices[:2].tolist() == [2, 4]
    flat = label_issues_from_scores(np.full(6, 1e-12) * np.arange(1, 7), np.zeros(6, dtype=int))
    assert flat.noise_rate == 0.0 and not flat.mask.any()


@pytest.mark.parametrize("X,y,match", [
    (np.ones((4, 2)), np.array([0, 1, 0]), "one label per sample"),
    (np.ones((4, 2)), np.array([1, 1, 1, 1]), "at least two classes"),
    (np.array([[np.nan, 1], [1, 1]]), np.array([0, 1]), "NaN"),
    (np.ones((2, 2)), np.array([0.5, 1.0]), "integer class labels"),
])
def test_array_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        train(X, y, "ce", epochs=1)


def test_train_on_arrays_with_a_test_set():
    x, given, _, truth = _blobs(seed=1)
    res = train(x[:200], given[:200], "sop", epochs=20, hidden=(), X_test=x[200:], y_test=truth[200:])
    assert res.test_accuracy > 0.9 and len(res.history) == 20


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dopfast", "sop", *args, "--quiet"], capture_output=True,
                          text=True, timeout=300)


def test_cli_data_npz_and_csv(tmp_path):
    x, given, wrong, _ = _blobs(n=150)
    np.savez(tmp_path / "d.npz", X=x, y=given)
    out = tmp_path / "issues.csv"
    done = _cli("--data", str(tmp_path / "d.npz"), "--epochs", "30", "--model", "linear", "--label-issues", str(out))
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "index,given_label,suggested_label,score,flagged" and len(lines) == 151
    again = _cli("--data", str(tmp_path / "d.npz"), "--label-issues", str(out))
    assert again.returncode != 0 and "exists; pass --overwrite" in again.stderr
    header = ",".join([f"f{i}" for i in range(5)] + ["target"])
    np.savetxt(tmp_path / "d.csv", np.column_stack([x, given]), delimiter=",", header=header, comments="")
    done = _cli("--data", str(tmp_path / "d.csv"), "--label-column", "target", "--epochs", "5", "--model", "linear")
    assert done.returncode == 0 and "accuracy" in done.stdout, done.stderr


@pytest.mark.parametrize("make,args,needle", [
    (lambda p: np.savez(p / "a.npz", X=np.ones((4, 2))), ["a.npz"], "no array 'y'"),
    (lambda p: np.savez(p / "a.npz", X=np.ones((4, 2)), y=np.array([0, 1, 0])), ["a.npz"], "one label per sample"),
    (lambda p: np.savez(p / "a.npz", X=np.ones((4, 2)), y=np.ones(4)), ["a.npz"], "at least two classes"),
    (lambda p: np.savez(p / "a.npz", X=np.array([[np.nan], [1.0]]), y=np.array([0, 1])), ["a.npz"], "NaN"),
    (lambda p: np.savez(p / "a.npz", X=np.ones((2, 1)), y=np.array([0.5, 1])), ["a.npz"], "integer class labels"),
    (lambda p: (p / "a.csv").write_text("f0,f1\n1,2\n"), ["a.csv"], "no label column 'label'"),
    (lambda p: (p / "a.txt").write_text("x"), ["a.txt"], "expected a .npz or .csv"),
    (lambda p: None, ["missing.npz"], "no such file"),
])
def test_cli_data_errors(tmp_path, make, args, needle):
    make(tmp_path)
    done = _cli("--data", str(tmp_path / args[0]), "--epochs", "1")
    assert done.returncode != 0 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
