"""Multi-scalar multiplication (Σ sᵢ·Pᵢ) and fixed-base batch multiplication (sᵢ·G for many sᵢ) in G1 and
G2, as numba kernels on the affine Montgomery tables of curve.py. The kernels are generic over the group
(curve.py's field dispatch), so G1 and G2 share every line.

MSM, Pippenger's bucket method:

- scalars are written in c-bit signed digits dⱼ ∈ [-2^(c-1), 2^(c-1)) by adding H = Σⱼ 2^(c-1)·2^(jc)
  and reading plain c-bit windows of s + H, less 2^(c-1): no carries between windows, and W, the number
  of windows, is the least with (r - 1) + H < 2^(Wc);
- window j adds ±Pᵢ to bucket |dⱼ| (2^(c-1) buckets) and sums the buckets with a running sum,
  Σ_b b·bucket_b; the windows combine as Σⱼ 2^(jc)·window_j (Horner, c doublings per window);
- bucket accumulation is batch-affine: buckets are affine points; bucket += P becomes an entry whose
  denominator (x_P - x_bucket, or 2y for a doubling) joins a running product, and a batch of entries is
  resolved with one field inversion (Montgomery's trick) and ~6 multiplications per entry. A bucket
  already waiting in the current batch takes no second entry: that point is deferred to a queue and
  retried after the batch; when the queue is full it goes to a Jacobian side bucket instead (a mixed
  addition: slower, always correct), so skewed inputs (every point in one bucket) never degrade into
  one inversion per point;
- zero scalars and points at infinity are dropped up front; scalars equal to 1 (circuit bits) would all
  land in bucket 1 of window 0, so they are summed apart into rotating accumulators (the same machinery
  with bucket = position mod batch size, which never collides);
- the work is split into tasks (one window of one chunk of points, or one chunk of the 1-scalars), each
  with its own buckets; tasks are dealt to the threads by estimated cost (longest first) and run under
  prange, one thread per prange iteration; c and the chunking come from a cost model.

Fixed base: a table T[j][d] = d·2^(jc)·G (d = 1 … 2^(c-1), affine) is built once (windows spread over
the threads, batch-normalised); each product is then the sum over windows of ±T[j][|dⱼ|], accumulated
for a chunk of scalars at a time with batch-affine additions (one inversion per chunk and window, and
no collisions since each scalar has its own accumulator). The output is affine as it stands.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from proofs.bn254.curve import (
    aff_is_infinity,
    f_add,
    f_eq,
    f_inv,
    f_is_zero,
    f_mul,
    f_neg,
    f_one,
    f_sqr,
    f_sub,
    f_zero,
    g1_points,
    g1_table,
    g2_points,
    g2_table,
    jac_add,
    jac_double,
    jac_from_affine,
    jac_infinity,
    jac_madd,
    jac_to_affine,
    ld,
    ld1,
    normalize_into,
    st,
    st1,
)
from proofs.bn254.field import ONE, ZERO, adc
from proofs.field import R
from proofs.groth16.keys import G1_INFINITY, G2_INFINITY, G1Point, G2Point

_LIMB = (1 << 64) - 1
_R_LIMBS = np.array([(R >> (64 * k)) & _LIMB for k in range(4)], dtype=np.uint64)

# --- scalar digits --------------------------------------------------------------------------------------


def _windows(c: int) -> tuple[int, np.ndarray]:
    """(W, H as five uint64 limbs) for c-bit signed digits of scalars below r (module docstring)."""
    n_windows = 1
    while True:
        h = sum(1 << (c - 1 + j * c) for j in range(n_windows))
        if (R - 1) + h < 1 << (n_windows * c):
            break
        n_windows += 1
    return n_windows, np.array([(h >> (64 * k)) & _LIMB for k in range(5)], dtype=np.uint64)


@njit(cache=True, inline="always")
def _digit(scalars, i, w, c, h):  # type: ignore[no-untyped-def]
    """The signed digit w of scalars[i]: bits [wc, wc + c) of s + H, less 2^(c-1) (c ≤ 16)."""
    k0, t0 = adc(scalars[i, 0], h[0], ZERO)
    k1, t1 = adc(scalars[i, 1], h[1], k0)
    k2, t2 = adc(scalars[i, 2], h[2], k1)
    k3, t3 = adc(scalars[i, 3], h[3], k2)
    t = (t0, t1, t2, t3, h[4] + k3, ZERO)
    pos = w * c
    li = pos >> 6
    off = pos & 63
    v = t[li] >> np.uint64(off)
    if off + c > 64:
        v |= t[li + 1] << np.uint64(64 - off)
    return np.int64(v & np.uint64((1 << c) - 1)) - (1 << (c - 1))


@njit(cache=True, inline="always")
def _below_r(scalars, i, r):  # type: ignore[no-untyped-def]
    for k in range(3, -1, -1):
        if scalars[i, k] != r[k]:
            return scalars[i, k] < r[k]
    return False


@njit(cache=True)
def _classify(points, scalars, r, out):  # type: ignore[no-untyped-def]
    """out[i]: 0 nothing to add (scalar 0 or point at infinity); 1 scalar 1; 2 any other; 3 scalar ≥ r."""
    for i in range(scalars.shape[0]):
        if not _below_r(scalars, i, r):
            out[i] = 3
        elif f_is_zero(ld(points, i, 1)) and f_is_zero(ld(points, i, 0)):
            out[i] = 0
        elif (scalars[i, 1] | scalars[i, 2] | scalars[i, 3]) == ZERO and scalars[i, 0] <= ONE:
            out[i] = 1 if scalars[i, 0] == ONE else 0
        else:
            out[i] = 2


@njit(cache=True)
def _count_not_below_r(scalars, r):  # type: ignore[no-untyped-def]
    bad = 0
    for i in range(scalars.shape[0]):
        if not _below_r(scalars, i, r):
            bad += 1
    return bad


# --- batch-affine bucket accumulation --------------------------------------------------------------------
#
# Scratch of one thread, as tuples of arrays:
#   buckets = (bx, state, jac, jflag): affine buckets (nb, 2, ...) with state 0 empty, 1 holding a point,
#             2 holding a point and waiting in the batch; Jacobian side buckets (nb, 3, ...) and flags;
#   batch = (ent_b, ent_pt, ent_den, ent_pre): per entry its bucket (-b - 1 for a doubling), the point
#             added, the denominator and the product of the denominators before it;
#   queue = (q_b, q_pt): deferred points and their buckets.


@njit(cache=True)
def _scratch(points, rows, batch):  # type: ignore[no-untyped-def]
    coord = points.shape[2:]
    buckets = (
        np.empty((rows, 2, *coord), np.uint64),
        np.empty(rows, np.uint8),
        np.empty((rows, 3, *coord), np.uint64),
        np.empty(rows, np.uint8),
    )
    entries = (
        np.empty(batch, np.int64),
        np.empty((batch, 2, *coord), np.uint64),
        np.empty((batch, *coord), np.uint64),
        np.empty((batch, *coord), np.uint64),
    )
    queue = (np.empty(batch, np.int64), np.empty((batch, 2, *coord), np.uint64))
    return buckets, entries, queue


@njit(cache=True, inline="always")
def _try_add(b, x, y, buckets, entries, nbatch, acc):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """Start bucket b += (x, y). Returns (busy, nbatch, acc): busy when bucket b already waits in this
    batch (the caller defers the point); otherwise the addition is done (empty bucket, or P + (-P)) or
    is entry nbatch of the batch, its denominator multiplied into acc."""
    bx, state, _, _ = buckets
    ent_b, ent_pt, ent_den, ent_pre = entries
    s = state[b]
    if s == 2:
        return True, nbatch, acc
    if s == 0:
        st(bx, b, 0, x)
        st(bx, b, 1, y)
        state[b] = 1
        return False, nbatch, acc
    x1 = ld(bx, b, 0)
    if f_eq(x1, x):
        y1 = ld(bx, b, 1)
        if not f_eq(y1, y):
            state[b] = 0
            return False, nbatch, acc
        den = f_add(y1, y1)
        ent_b[nbatch] = -b - 1
    else:
        den = f_sub(x, x1)
        ent_b[nbatch] = b
    st(ent_pt, nbatch, 0, x)
    st(ent_pt, nbatch, 1, y)
    st1(ent_den, nbatch, den)
    st1(ent_pre, nbatch, acc)
    state[b] = 2
    return False, nbatch + 1, f_mul(acc, den)


@njit(cache=True)
def _chord_or_tangent(x1, y1, x2, y2, doubling, inv):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """The affine (x1, y1) + (x2, y2) given inv = 1/(x2 - x1), or, when doubling, 2·(x1, y1) given
    inv = 1/(2·y1) ((x2, y2) unused): the second half of a batch-affine addition."""
    if doubling:
        t = f_sqr(x1)
        lam = f_mul(f_add(f_add(t, t), t), inv)
        x2 = x1
    else:
        lam = f_mul(f_sub(y2, y1), inv)
    x3 = f_sub(f_sub(f_sqr(lam), x1), x2)
    return x3, f_sub(f_mul(lam, f_sub(x1, x3)), y1)


@njit(cache=True)
def _flush(buckets, entries, nbatch, acc):  # type: ignore[no-untyped-def]
    """Resolve the nbatch entries with one inversion of their denominators' product acc."""
    bx, state, _, _ = buckets
    ent_b, ent_pt, ent_den, ent_pre = entries
    inv = f_inv(acc)
    for k in range(nbatch - 1, -1, -1):
        if k > 0:
            ik = f_mul(inv, ld1(ent_pre, k))
            inv = f_mul(inv, ld1(ent_den, k))
        else:
            ik = inv
        e = ent_b[k]
        b = e if e >= 0 else -e - 1
        x3, y3 = _chord_or_tangent(ld(bx, b, 0), ld(bx, b, 1), ld(ent_pt, k, 0), ld(ent_pt, k, 1), e < 0, ik)
        st(bx, b, 0, x3)
        st(bx, b, 1, y3)
        state[b] = 1


@njit(cache=True)
def _side_add(buckets, b, x, y):  # type: ignore[no-untyped-def]
    """Jacobian side bucket b += (x, y), for a point the queue has no room for."""
    _, _, jac, jflag = buckets
    if jflag[b]:
        p = jac_madd((ld(jac, b, 0), ld(jac, b, 1), ld(jac, b, 2)), x, y)
    else:
        p = (x, y, f_one(x))
        jflag[b] = 1
    st(jac, b, 0, p[0])
    st(jac, b, 1, p[1])
    st(jac, b, 2, p[2])


@njit(cache=True, inline="always")
def _defer(queue, nq, b, x, y):  # type: ignore[no-untyped-def]
    q_b, q_pt = queue
    q_b[nq] = b
    st(q_pt, nq, 0, x)
    st(q_pt, nq, 1, y)
    return nq + 1


@njit(cache=True)
def _drain(scratch, nq, final, nbatch, acc, batch):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """Retry the deferred points after a flush. Those whose bucket is busy again stay queued or, when
    final, go to the side buckets. Returns (nbatch, acc, nq)."""
    buckets, entries, queue = scratch
    q_b, q_pt = queue
    one = f_one(acc)
    m = nq
    nq = 0
    for j in range(m):
        b = q_b[j]
        x = ld(q_pt, j, 0)
        y = ld(q_pt, j, 1)
        busy, nbatch, acc = _try_add(b, x, y, buckets, entries, nbatch, acc)
        if busy:
            if final:
                _side_add(buckets, b, x, y)
            else:
                nq = _defer(queue, nq, b, x, y)  # j ≥ nq: compaction in place
        elif nbatch == batch:
            _flush(buckets, entries, nbatch, acc)
            nbatch = 0
            acc = one
    return nbatch, acc, nq


@njit(cache=True)
def _running_sum(buckets, nb, weighted):  # type: ignore[no-untyped-def]
    """Σ (b + 1)·bucket_b when weighted, else Σ bucket_b, affine and side buckets together."""
    bx, state, jac, jflag = buckets
    running = jac_infinity(ld(bx, 0, 0))
    total = running
    for b in range(nb - 1, -1, -1):
        if state[b]:
            running = jac_madd(running, ld(bx, b, 0), ld(bx, b, 1))
        if jflag[b]:
            running = jac_add(running, (ld(jac, b, 0), ld(jac, b, 1), ld(jac, b, 2)))
        if weighted:
            total = jac_add(total, running)
    return total if weighted else running


@njit(cache=True)
def _bucket_task(points, scalars, idx, span, w, c, h, nb, batch, scratch):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """One task, as a Jacobian point: w ≥ 0, Σ dᵢ·Pᵢ over the points idx[lo:hi] (span = (lo, hi)) with dᵢ
    their digit w; w < 0, Σ Pᵢ over them (the 1-scalars), bucket = position mod nb."""
    buckets, entries, queue = scratch
    _, state, _, jflag = buckets
    lo, hi = span
    state[:nb] = 0
    jflag[:nb] = 0
    one = f_one(ld(points, 0, 0))
    acc = one
    nbatch = 0
    nq = 0
    capacity = queue[0].shape[0]
    for j in range(lo, hi):
        i = idx[j]
        if w >= 0:
            d = _digit(scalars, i, w, c, h)
            if d == 0:
                continue
            b = d - 1 if d > 0 else -d - 1
            y = ld(points, i, 1) if d > 0 else f_neg(ld(points, i, 1))
        else:
            b = (j - lo) % nb
            y = ld(points, i, 1)
        x = ld(points, i, 0)
        busy, nbatch, acc = _try_add(b, x, y, buckets, entries, nbatch, acc)
        if busy:
            if nq < capacity:
                nq = _defer(queue, nq, b, x, y)
            else:
                _side_add(buckets, b, x, y)
        elif nbatch == batch:
            _flush(buckets, entries, nbatch, acc)
            nbatch = 0
            acc = one
            if nq:
                nbatch, acc, nq = _drain(scratch, nq, False, nbatch, acc, batch)
    if nbatch:
        _flush(buckets, entries, nbatch, acc)
        nbatch = 0
        acc = one
    if nq:
        nbatch, acc, nq = _drain(scratch, nq, True, nbatch, acc, batch)
        if nbatch:
            _flush(buckets, entries, nbatch, acc)
    return _running_sum(buckets, nb, w >= 0)


# cfg: the plan's integers (c, nb, batch, batch_one, threads), shared by the kernels below
_C, _NB, _BATCH, _BATCH_ONE, _THREADS = range(5)


@njit(cache=True)
def _thread_tasks(t, points, scalars, idx_gen, idx_one, tasks, cfg, h, results):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """Run the tasks dealt to thread t (tasks[k] = (thread, window or -1, lo, hi)) on its own scratch."""
    scratch = _scratch(points, max(cfg[_NB], cfg[_BATCH_ONE]), max(cfg[_BATCH], cfg[_BATCH_ONE]))
    for k in range(tasks.shape[0]):
        if tasks[k, 0] != t:
            continue
        w = tasks[k, 1]
        span = (tasks[k, 2], tasks[k, 3])
        if w >= 0:
            p = _bucket_task(points, scalars, idx_gen, span, w, cfg[_C], h, cfg[_NB], cfg[_BATCH], scratch)
        else:
            nb = cfg[_BATCH_ONE]
            p = _bucket_task(points, scalars, idx_one, span, w, cfg[_C], h, nb, nb, scratch)
        st(results, k, 0, p[0])
        st(results, k, 1, p[1])
        st(results, k, 2, p[2])


@njit(cache=True, parallel=True)
def _msm_kernel(points, scalars, idx_gen, idx_one, tasks, cfg, h, results):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    for t in prange(cfg[_THREADS]):
        _thread_tasks(t, points, scalars, idx_gen, idx_one, tasks, cfg, h, results)


@njit(cache=True)
def _combine(results, tasks, n_windows, c, out):  # type: ignore[no-untyped-def]
    """out[0] = Σ_j 2^(jc)·(window j's tasks) + (the 1-scalar tasks), affine."""
    acc = jac_infinity(ld(results, 0, 0))
    for w in range(n_windows - 1, -1, -1):
        for _ in range(c):
            acc = jac_double(acc)
        for k in range(tasks.shape[0]):
            if tasks[k, 1] == w:
                acc = jac_add(acc, (ld(results, k, 0), ld(results, k, 1), ld(results, k, 2)))
    for k in range(tasks.shape[0]):
        if tasks[k, 1] < 0:
            acc = jac_add(acc, (ld(results, k, 0), ld(results, k, 1), ld(results, k, 2)))
    x, y = jac_to_affine(acc)
    st(out, 0, 0, x)
    st(out, 0, 1, y)


# --- the MSM's plan: window size, tasks, threads ------------------------------------------------------------

# Rough costs in field multiplications (the ratios hold for G1 and G2 alike).
_COST_ADD = 9.0  # one batch-affine addition into a bucket, besides the inversion
_COST_INV = 380.0  # one field inversion
_COST_DIGIT = 0.5  # reading a point's digit (also when it is 0)
_COST_BUCKET = 32.0  # running-sum reduction, per bucket
_MAX_BATCH = 1024
_MIN_CHUNK = 1 << 12  # don't split a window between chunks of fewer points


@dataclass(frozen=True)
class _Plan:
    c: int
    tasks: np.ndarray  # (k, 4) int64: thread, window (-1 for the 1-scalars), lo, hi
    batch: int
    batch_one: int
    makespan: float


def _window_batch(nb: int) -> int:
    return max(8, min(_MAX_BATCH, nb // 4))


def _deal(costs: list[float], nthreads: int) -> tuple[list[int], float]:
    """Longest-processing-time-first assignment of tasks to threads: (thread of each task, makespan)."""
    heap = [(0.0, t) for t in range(nthreads)]
    owner = [0] * len(costs)
    for k in sorted(range(len(costs)), key=lambda k: -costs[k]):
        load, t = heapq.heappop(heap)
        owner[k] = t
        heapq.heappush(heap, (load + costs[k], t))
    return owner, max(load for load, _ in heap)


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


@lru_cache(maxsize=64)
def _plan(n_gen: int, n_one: int, nthreads: int) -> _Plan:
    """Choose c and the tasks for n_gen general and n_one 1-scalar points (a few ms: kept, since a
    prover's MSMs come back with the same counts proof after proof). The plan is never modified."""
    one_parts = max(1, min(nthreads, n_one // _MIN_CHUNK))
    batch_one = max(8, min(_MAX_BATCH, n_one // (8 * one_parts)))
    one_tasks = [(-1, lo, hi) for lo, hi in _chunks(n_one, one_parts)] if n_one else []
    per_one = _COST_ADD + _COST_INV / batch_one
    one_costs = [(hi - lo) * per_one + batch_one * 12.0 for _, lo, hi in one_tasks]
    best: _Plan | None = None
    for c in range(4, 17) if n_gen else [4]:
        n_windows, _ = _windows(c)
        nb = 1 << (c - 1)
        batch = _window_batch(nb)
        per_point = _COST_DIGIT + (_COST_ADD + _COST_INV / batch) * (1 - 1 / (1 << c))
        for parts in range(1, 2 * nthreads + 1):
            if parts > 1 and n_gen < parts * _MIN_CHUNK:
                break
            chunks = _chunks(n_gen, parts) if n_gen else []
            w_tasks = [(w, lo, hi) for w in range(n_windows) for lo, hi in chunks]
            costs = [(hi - lo) * per_point + nb * _COST_BUCKET for _, lo, hi in w_tasks] + one_costs
            owner, makespan = _deal(costs, nthreads)
            if best is None or makespan < best.makespan:
                rows = [(owner[k], *task) for k, task in enumerate(w_tasks + one_tasks)]
                tasks = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
                best = _Plan(c, tasks, batch, batch_one, makespan)
    assert best is not None
    return best


def _msm(points: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """Σ scalars[i]·points[i] as a one-row affine table."""
    n = points.shape[0]
    out = np.zeros((1, *points.shape[1:]), dtype=np.uint64)
    if n == 0:
        return out
    kind = np.empty(n, dtype=np.int8)
    _classify(points, scalars, _R_LIMBS, kind)
    if (kind == 3).any():
        raise ValueError("MSM scalars must be reduced, plain (not Montgomery) and below r")
    idx_gen = np.flatnonzero(kind == 2).astype(np.int64)
    idx_one = np.flatnonzero(kind == 1).astype(np.int64)
    if idx_gen.size == 0 and idx_one.size == 0:
        return out
    nthreads = numba.get_num_threads()
    plan = _plan(idx_gen.size, idx_one.size, nthreads)
    n_windows, h = _windows(plan.c)
    cfg = np.array([plan.c, 1 << (plan.c - 1), plan.batch, plan.batch_one, nthreads], dtype=np.int64)
    results = np.empty((plan.tasks.shape[0], 3, *points.shape[2:]), dtype=np.uint64)
    _msm_kernel(points, scalars, idx_gen, idx_one, plan.tasks, cfg, h, results)
    _combine(results, plan.tasks, n_windows, plan.c, out)
    return out


def _kernel_array(array: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable uint64 array (a copy only when needed): numba compiles a kernel apart for
    each kind of array (read-only ones included), and `warm` compiles them for this kind."""
    array = np.ascontiguousarray(array, dtype=np.uint64)
    return array if array.flags.writeable else array.copy()


def _inputs(points: np.ndarray, scalars: np.ndarray, coord: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    points = _kernel_array(points)
    scalars = _kernel_array(scalars)
    if points.shape[1:] != (2, *coord) or scalars.ndim != 2 or scalars.shape[1] != 4:
        raise ValueError(f"an MSM takes points (n, 2, {', '.join(map(str, coord))}) and scalars (n, 4)")
    if points.shape[0] != scalars.shape[0]:
        raise ValueError(f"{points.shape[0]} points but {scalars.shape[0]} scalars")
    return points, scalars


def msm_g1(points: np.ndarray, scalars: np.ndarray) -> G1Point:
    """Σ scalars[i]·points[i] in G1 for an (n, 2, 4) affine Montgomery table and (n, 4) plain scalars
    below r; the result as plain affine integers ((0, 0) for infinity)."""
    return g1_points(_msm(*_inputs(points, scalars, (4,))))[0]


def msm_g2(points: np.ndarray, scalars: np.ndarray) -> G2Point:
    """Σ scalars[i]·points[i] in G2 for an (n, 2, 2, 4) affine Montgomery table and (n, 4) plain scalars
    below r; the result as plain affine integers (((0, 0), (0, 0)) for infinity)."""
    return g2_points(_msm(*_inputs(points, scalars, (2, 4))))[0]


# --- fixed-base batch multiplication -----------------------------------------------------------------------


@njit(cache=True)
def _build_window(base, w, c, table):  # type: ignore[no-untyped-def]
    """table[w·nt + d - 1] = d·2^(wc)·base for d = 1 … nt = 2^(c-1), affine."""
    nt = 1 << (c - 1)
    coord = table.shape[2:]
    jac = np.empty((nt, 3, *coord), np.uint64)
    g = jac_from_affine(ld(base, 0, 0), ld(base, 0, 1))
    for _ in range(w * c):
        g = jac_double(g)
    gx, gy = jac_to_affine(g)
    p = jac_from_affine(gx, gy)
    for d in range(nt):
        st(jac, d, 0, p[0])
        st(jac, d, 1, p[1])
        st(jac, d, 2, p[2])
        p = jac_madd(p, gx, gy)
    normalize_into(jac, table[w * nt : (w + 1) * nt], 0, nt, np.empty((nt, *coord), np.uint64))


@njit(cache=True, parallel=True)
def _build_table(base, n_windows, c, table, nthreads):  # type: ignore[no-untyped-def]
    for t in prange(nthreads):
        for w in range(t, n_windows, nthreads):
            _build_window(base, w, c, table)


@njit(cache=True)
def _fixed_entries(table, scalars, lo, w, c, h, out, scratch):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """First half of out[lo + k] += T[w][digit w of scalar lo + k] over a chunk: empty accumulators take
    the table point, P + (-P) empties one, the rest become entries (kind 1 add, 2 double) with their
    denominators and prefix products. Returns the product of all denominators."""
    state, kind, ent_pt, ent_den, ent_pre = scratch
    nt = 1 << (c - 1)
    acc = f_one(ld(table, 0, 0))
    for k in range(min(kind.shape[0], scalars.shape[0] - lo)):
        kind[k] = 0
        i = lo + k
        d = _digit(scalars, i, w, c, h)
        if d == 0:
            continue
        row = w * nt + (d - 1 if d > 0 else -d - 1)
        x2 = ld(table, row, 0)
        y2 = ld(table, row, 1) if d > 0 else f_neg(ld(table, row, 1))
        if aff_is_infinity(x2, y2):
            continue
        if state[k] == 0:
            st(out, i, 0, x2)
            st(out, i, 1, y2)
            state[k] = 1
            continue
        x1 = ld(out, i, 0)
        if f_eq(x1, x2):
            y1 = ld(out, i, 1)
            if not f_eq(y1, y2):
                state[k] = 0
                st(out, i, 0, f_zero(x1))
                st(out, i, 1, f_zero(x1))
                continue
            den = f_add(y1, y1)
            kind[k] = 2
        else:
            den = f_sub(x2, x1)
            kind[k] = 1
        st(ent_pt, k, 0, x2)
        st(ent_pt, k, 1, y2)
        st1(ent_den, k, den)
        st1(ent_pre, k, acc)
        acc = f_mul(acc, den)
    return acc


@njit(cache=True)
def _fixed_resolve(lo, out, scratch, acc):  # type: ignore[no-untyped-def]
    """Second half: one inversion of acc, then every entry's affine addition or doubling."""
    _, kind, ent_pt, ent_den, ent_pre = scratch
    inv = f_inv(acc)
    for k in range(min(kind.shape[0], out.shape[0] - lo) - 1, -1, -1):
        if kind[k] == 0:
            continue
        ik = f_mul(inv, ld1(ent_pre, k))
        inv = f_mul(inv, ld1(ent_den, k))
        i = lo + k
        x3, y3 = _chord_or_tangent(
            ld(out, i, 0), ld(out, i, 1), ld(ent_pt, k, 0), ld(ent_pt, k, 1), kind[k] != 1, ik
        )
        st(out, i, 0, x3)
        st(out, i, 1, y3)


@njit(cache=True)
def _fixed_thread(t, table, scalars, cfg, h, out):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """The chunks t, t + threads, … of the scalars; cfg = (c, windows, chunk, threads)."""
    n_windows, chunk, nthreads = cfg[1], cfg[2], cfg[3]
    coord = table.shape[2:]
    scratch = (
        np.empty(chunk, np.uint8),
        np.empty(chunk, np.uint8),
        np.empty((chunk, 2, *coord), np.uint64),
        np.empty((chunk, *coord), np.uint64),
        np.empty((chunk, *coord), np.uint64),
    )
    for lo in range(t * chunk, scalars.shape[0], nthreads * chunk):
        scratch[0][:] = 0
        for w in range(n_windows):
            acc = _fixed_entries(table, scalars, lo, w, cfg[0], h, out, scratch)
            _fixed_resolve(lo, out, scratch, acc)


@njit(cache=True, parallel=True)
def _fixed_kernel(table, scalars, cfg, h, out):  # type: ignore[no-untyped-def]
    for t in prange(cfg[3]):
        _fixed_thread(t, table, scalars, cfg, h, out)


_COST_TABLE_ENTRY = 24.0  # one table point: a mixed addition and its share of the normalisation
_COST_MISS_PER_MIB = 0.11  # extra cost of a lookup per MiB of table beyond the L2 cache (measured)
_L2_BYTES = 1 << 21


def _fixed_window(n: int, point_bytes: int) -> int:
    """The window size c minimising the estimated cost of n fixed-base products."""
    best_c, best_cost = 2, float("inf")
    for c in range(2, 17):
        n_windows, _ = _windows(c)
        entries = n_windows << (c - 1)
        table_bytes = entries * point_bytes
        miss = 0.0
        if table_bytes > _L2_BYTES:  # relative to a G1 addition: a G2 addition costs about three
            miss = _COST_MISS_PER_MIB * table_bytes / (1 << 20) * 64 / point_bytes
        cost = n * n_windows * (_COST_DIGIT + _COST_ADD + _COST_INV / _MAX_BATCH + miss)
        cost += entries * _COST_TABLE_ENTRY
        if cost < best_cost:
            best_c, best_cost = c, cost
    return best_c


def _batch_mul(base: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """scalars[i]·base for a one-row affine table `base`, as an affine table."""
    scalars = np.ascontiguousarray(scalars, dtype=np.uint64)
    if scalars.ndim != 2 or scalars.shape[1] != 4:
        raise ValueError("scalars must be an (n, 4) uint64 array")
    n = scalars.shape[0]
    out = np.zeros((n, *base.shape[1:]), dtype=np.uint64)
    if n == 0:
        return out
    if _count_not_below_r(scalars, _R_LIMBS):
        raise ValueError("scalars must be reduced, plain (not Montgomery) and below r")
    if not base.any():
        return out
    nthreads = numba.get_num_threads()
    c = _fixed_window(n, base[0].nbytes)
    n_windows, h = _windows(c)
    table = np.empty((n_windows << (c - 1), *base.shape[1:]), dtype=np.uint64)
    _build_table(base, n_windows, c, table, min(nthreads, n_windows))
    chunk = max(1, min(_MAX_BATCH, -(-n // nthreads)))
    _fixed_kernel(table, scalars, np.array([c, n_windows, chunk, nthreads], dtype=np.int64), h, out)
    return out


def batch_mul_g1(base: G1Point, scalars: np.ndarray) -> np.ndarray:
    """scalars[i]·base for (n, 4) plain scalars below r, as an (n, 2, 4) affine Montgomery table
    (infinity as zeros)."""
    if tuple(base) == G1_INFINITY:
        return _batch_mul(np.zeros((1, 2, 4), dtype=np.uint64), scalars)
    return _batch_mul(g1_table([base]), scalars)


def batch_mul_g2(base: G2Point, scalars: np.ndarray) -> np.ndarray:
    """scalars[i]·base for (n, 4) plain scalars below r, as an (n, 2, 2, 4) affine Montgomery table
    (infinity as zeros). The base should lie in the order-r subgroup (the generator, in practice)."""
    if base == G2_INFINITY:
        return _batch_mul(np.zeros((1, 2, 2, 4), dtype=np.uint64), scalars)
    return _batch_mul(g2_table([base]), scalars)
