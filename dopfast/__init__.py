"""dopfast: robust recovery by double over-parameterization, on fused C++/CUDA torch ops."""

import torch  # noqa: F401  (loads libtorch before the extension, which has no RPATH of its own)

try:
    from . import _C
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "dopfast's compiled extension could not be loaded. Build it against the installed torch with "
        "`pip install --no-build-isolation -e .` (torch " + torch.__version__ + ")."
    ) from exc

from . import ops, reference  # noqa: E402  (ops registers the fake kernels and autograd)
from ._version import __version__  # noqa: E402
from .rpca import RobustPCA  # noqa: E402


def has_cuda_kernels() -> bool:
    """True when the CUDA kernels were compiled into this build (it says nothing about a GPU being present)."""
    return bool(_C.has_cuda_kernels())


def build_info() -> dict:
    """What this build of dopfast contains and runs on."""
    return {
        "version": __version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_kernels": has_cuda_kernels(),
        "cuda_available": torch.cuda.is_available(),
        "cpu_isa": _C.cpu_isa(),
    }


__all__ = ["ops", "reference", "RobustPCA", "has_cuda_kernels", "build_info", "__version__"]
