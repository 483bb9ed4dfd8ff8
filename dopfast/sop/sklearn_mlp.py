"""dopfast's MLP and training loop as a scikit-learn classifier, so that tools built on scikit-learn's API
(cleanlab's ``CleanLearning``) train the same network, the same way, as the SOP pipeline."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """An MLP (hidden layers of ``hidden`` units, ReLU) trained with cross entropy by SGD (momentum 0.9)."""

    def __init__(self, hidden=(256, 256), epochs: int = 100, lr: float = 0.1, batch_size: int = 128,
                 weight_decay: float = 0.0, seed: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed

    def fit(self, X, y, sample_weight=None):
        from .train import make_mlp, sgd_epochs

        torch.manual_seed(self.seed)
        self.classes_ = np.unique(y)
        lookup = {c: i for i, c in enumerate(self.classes_)}
        x = torch.as_tensor(np.asarray(X, dtype=np.float32))
        t = torch.as_tensor(np.array([lookup[c] for c in y], dtype=np.int64))
        w = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight, dtype=np.float32))
        self.model_ = make_mlp(x.shape[1], len(self.classes_), self.hidden)

        def loss_fn(logits, targets, idx):
            losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            # A batch whose weights are all 0 contributes nothing (not 0/0 = NaN in every parameter).
            return losses.mean() if w is None else (losses * w[idx]).sum() / w[idx].sum().clamp_min(1e-12)

        sgd_epochs(self.model_, x, t, loss_fn, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                   weight_decay=self.weight_decay, seed=self.seed)
        return self

    @torch.no_grad()
    def predict_proba(self, X):
        self.model_.eval()
        return torch.softmax(self.model_(torch.as_tensor(np.asarray(X, dtype=np.float32))), dim=1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]
