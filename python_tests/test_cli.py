"""The command line's demo (what `make demo` runs) and its top-level errors."""

import re
import subprocess
import sys

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
