"""BN254 arithmetic for the prover: numba kernels for the base field, the scalar field, Fp2, the curve
groups G1 and G2, the NTT and multi-scalar multiplication.

py_ecc is the reference that every kernel is tested against; these kernels are only the fast path.

Compiled kernels are cached on disk (`cache=True`). numba checks a cached kernel only against its own
source file, but a kernel also holds the code of every function it inlines from other files: after an
edit of field.py, the cached MSM would still multiply the old way. So the cache lives in a folder named
after a hash of every kernel source (this package and proofs/groth16/qap.py), under $NUMBA_CACHE_DIR or
~/.cache/xrelay/numba: changed sources get a fresh folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from numba.core import config


def _kernel_cache_dir() -> Path:
    here = Path(__file__).parent
    sources = [*sorted(here.glob("*.py")), here.parent / "groth16" / "qap.py"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (Path(chosen) if chosen else user_cache / "xrelay" / "numba") / digest


config.CACHE_DIR = str(_kernel_cache_dir())
