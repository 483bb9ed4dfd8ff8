"""The public paths that users import keep working across the package's reorganisations."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("path", [
    "dopfast.RobustPCA", "dopfast.ops.residual_step_", "dopfast.ops.residual_step_out_", "dopfast.ops.dop_residual",
    "dopfast.ops.lowrank_step_", "dopfast.ops.lowrank_step_uv_", "dopfast.ops.rpca_dop_solve",
    "dopfast.ops.rpca_dop_solve_uv", "dopfast.ops.sop_loss_step_", "dopfast.reference.residual_step_",
    "dopfast.data.rpca_problem", "dopfast.data.relative_error", "dopfast.sop.SOPLoss", "dopfast.sop_train.train",
    "dopfast.sop.train.train", "dopfast.dip.restore", "dopfast.dip.SkipNet", "dopfast.rpca.fit_dop",
    "dopfast.rpca.step_scale", "dopfast.rpca.ConvergenceWarning", "dopfast.__version__",
])
def test_public_path_imports(path):
    import importlib

    module, _, name = path.rpartition(".")
    assert getattr(importlib.import_module(module), name) is not None


def test_pipelines_do_not_import_each_other():
    # Each pipeline stands on the op layer only: importing one must not load another.
    code = ("import sys, dopfast.{0}; others = {{'rpca', 'sop', 'dip'}} - {{'{0}'}}; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in [['dopfast', o] for o in others]))")
    for pipeline in ("sop", "dip"):
        done = subprocess.run([sys.executable, "-c", code.format(pipeline)], capture_output=True, text=True,
                              timeout=120)
        # dopfast/__init__ exposes RobustPCA, so the rpca package is always there; sop and dip never load it
        # into each other.
        loaded = eval(done.stdout.strip())  # noqa: S307 - our own child's output
        assert not [m for m in loaded if not m.startswith("dopfast.rpca")], loaded


@pytest.mark.parametrize("command", ["demo", "sop", "dip", "rpca", "bench"])
def test_cli_commands_exist(command):
    done = subprocess.run([sys.executable, "-m", "dopfast", command, "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "usage" in done.stdout


def test_bench_ops_quick_runs_from_the_package(tmp_path):
    # From a folder outside the repository: the benchmarks ship with the package.
    out = tmp_path / "ops.md"
    done = subprocess.run([sys.executable, "-m", "dopfast", "bench", "ops", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "**residual_step_**" in text and "**Verdict** (residual_step_)" in text and "torch.compile" in text
    again = subprocess.run([sys.executable, "-m", "dopfast", "bench", "ops", "--quick", "--out", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
