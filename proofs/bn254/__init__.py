"""BN254 arithmetic for the prover: numba kernels for the base field, the scalar field, Fp2, the curve
groups G1 and G2, the NTT and multi-scalar multiplication.

py_ecc is the reference that every kernel is tested against; these kernels are only the fast path.

Compiled kernels are cached on disk (`cache=True`). numba checks a cached kernel only against its own
source file, but a kernel also holds the code of every function it inlines from other files: after an
edit of field.py, the cached MSM would still multiply the old way. So the cache lives in a folder named
after a hash of every kernel source (this package and proofs/groth16/qap.py), under $NUMBA_CACHE_DIR or
~/.cache/xrelay/numba: changed sources get a fresh folder.

The parallel kernels run on numba's OpenMP threads. By default GNU OpenMP keeps its idle threads spinning
for a while after each parallel loop; between the prover's kernels (Python glue, the serial steps) that
spinning burns a core for nothing, about 15% of a proof's CPU time, and on a busy machine it takes that core
from the thread doing the work. So OMP_WAIT_POLICY defaults to PASSIVE here (idle threads sleep; waking
them costs microseconds per loop); a value set in the environment wins.
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
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when the OpenMP runtime loads: the first kernel
