"""Checkpoints of a restoration run, and Ctrl-C deferred to the end of the iteration in progress.

A checkpoint holds only tensors, numbers, strings and containers of them, and is read back with
``torch.load(weights_only=True)``: a crafted file cannot run code. It is written atomically (a temporary file,
then a rename), so an interrupted save never leaves a broken checkpoint, and it records the run's
configuration, including a digest of the corrupted image, so that resuming with other arguments or another
image is refused instead of silently mixing two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import signal
import threading
import zipfile
from pathlib import Path

import numpy as np
import torch


def image_digest(image: np.ndarray) -> str:
    """A short digest of an image's shape and values (what a checkpoint's config records)."""
    arr = np.ascontiguousarray(image, dtype=np.float64)
    return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()[:16]


class Checkpoint:
    """The checkpoint file of one run: ``config`` is what must match for a resume."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.config = config

    def exists(self) -> bool:
        return self.path.exists()

    def check_writable(self) -> None:
        """Fail before the first iteration when the checkpoint could not be written later."""
        if self.path.is_dir():
            raise IsADirectoryError(f"restore: checkpoint {self.path} is a directory; give a file name")
        folder = self.path.parent
        if not folder.is_dir():
            raise FileNotFoundError(f"restore: the checkpoint's folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"restore: the checkpoint's folder {folder} is not writable")

    def load(self, map_location) -> dict:
        """The saved state; raises ValueError naming the file when it is unreadable or from another run."""
        try:
            state = torch.load(self.path, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError, KeyError,
                ValueError) as exc:
            raise ValueError(f"restore: checkpoint {self.path} cannot be read as a dopfast checkpoint "
                             f"(truncated, corrupt, or not written by restore): {exc}") from exc
        keys = ("config", "iteration", "net", "g", "h", "optimizers", "z0", "rng", "history")
        if not isinstance(state, dict) or any(k not in state for k in keys) or not isinstance(
                state["iteration"], int) or state["iteration"] < 0:
            raise ValueError(f"restore: {self.path} is not a dopfast restore checkpoint")
        if state["config"] != self.config:
            diff = {k: (state["config"].get(k), v) for k, v in self.config.items() if state["config"].get(k) != v}
            raise ValueError(f"restore: checkpoint {self.path} was written with other arguments or another "
                             f"image; (checkpoint, now): {diff}")
        return state

    def save(self, state: dict) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(dict(state, config=self.config), tmp)
        os.replace(tmp, self.path)


@contextlib.contextmanager
def deferred_interrupt():
    """Within the block, Ctrl-C only sets a flag (``flag[0]``), which the loop checks at the end of each
    iteration; a second Ctrl-C interrupts at once. Outside the main thread there is no signal handling."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        flag[0] = True
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
