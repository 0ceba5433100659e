"""Our Groth16 setup and prover against the three verifiers (py_ecc, the generated Solidity verifier on
anvil, snarkjs), and snarkjs's prover against ours, on the same .zkey and .wtns files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
from web3.contract import Contract

from bridge_contracts.chain import Chain
from bridge_contracts.verifier_gen import calldata, deploy_verifier
from proofs.bn254.field import P
from proofs.field import R
from proofs.formats import FormatError, snarkjs_json, wtns, zkey
from proofs.groth16.keys import ProvingKey, read_proving_key
from proofs.groth16.proof import Proof
from proofs.groth16.prover import ProverError, prove
from proofs.groth16.setup import SetupRefused, setup
from proofs.groth16.verifier import verify, verify_batch
from proofs.groth16.worker import ProverWorker
from tests import snarkjs
from tests.snarkjs import small_ceremony, small_circuit, small_witness
from tests.test_zkey import MALFORMED


@pytest.fixture(scope="module")
def dev_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProvingKey, Path]:
    """A development key for small_circuit, also written as a .zkey."""
    pk = setup(small_circuit(), seed=b"test_groth16", development=True)
    path = tmp_path_factory.mktemp("dev_key") / "small.zkey"
    zkey.write(pk, path)
    return pk, path


def _public(witness: list[int]) -> list[int]:
    return small_circuit().public_values(witness)


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _snarkjs_accepts(tmp_path: Path, pk: ProvingKey, public: list[int], proof: Proof) -> bool:
    return snarkjs.verify(
        _write_json(tmp_path / "vk.json", snarkjs_json.verifying_key_to_json(pk.vk)),
        _write_json(tmp_path / "public.json", snarkjs_json.public_to_json(public)),
        _write_json(tmp_path / "proof.json", snarkjs_json.proof_to_json(proof)),
    )


def _solidity_accepts(verifier: Contract, public: list[int], proof: Proof) -> bool:
    return bool(verifier.functions.verifyProof(*calldata(proof, public)).call())


def test_a_seeded_setup_is_refused_unless_it_is_for_development() -> None:
    with pytest.raises(SetupRefused, match="development only"):
        setup(small_circuit(), seed=b"x")


def test_a_development_key_says_so_in_every_form(dev_key: tuple[ProvingKey, Path], tmp_path: Path) -> None:
    pk, path = dev_key
    assert pk.development and pk.vk.development
    assert zkey.read(path).development
    exported = snarkjs_json.verifying_key_to_json(pk.vk)
    assert "NOT FOR PRODUCTION" in exported[snarkjs_json.DEVELOPMENT_FIELD]


def test_the_same_seed_gives_the_same_key_and_another_seed_another(dev_key: tuple[ProvingKey, Path]) -> None:
    pk, _ = dev_key
    again = setup(small_circuit(), seed=b"test_groth16", development=True)
    other = setup(small_circuit(), seed=b"other", development=True)
    assert again.vk == pk.vk and (again.h_query == pk.h_query).all()
    assert other.vk.alpha_1 != pk.vk.alpha_1


def _same_key(a: ProvingKey, b: ProvingKey) -> bool:
    tables = ("a_query", "b1_query", "b2_query", "c_query", "h_query")
    coefficients = ("matrix", "constraint", "signal", "value")
    return (
        (a.vk, a.n_vars, a.domain_size, a.beta_1, a.delta_1, a.contributions)
        == (b.vk, b.n_vars, b.domain_size, b.beta_1, b.delta_1, b.contributions)
        and all(np.array_equal(getattr(a, t), getattr(b, t)) for t in tables)
        and all(
            np.array_equal(getattr(a.coefficients.expanded(), c), getattr(b.coefficients, c))
            for c in coefficients
        )
        and all(getattr(a, t).flags.writeable and getattr(a, t).flags.c_contiguous for t in tables)
        and isinstance(a.contributions, bytes)
    )


def test_the_lean_reader_reads_the_key_zkey_reads(
    dev_key: tuple[ProvingKey, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, path = dev_key
    ceremony = small_ceremony(tmp_path_factory)
    assert _same_key(read_proving_key(path), zkey.read(path))
    assert _same_key(read_proving_key(ceremony), zkey.read(ceremony))
    compact = read_proving_key(ceremony).coefficients  # each distinct value once
    assert compact.value_index is not None and 2 * len(compact.value) <= len(compact.matrix)
    mapped = Path("/proc/self/maps")
    if mapped.exists():  # Linux: the file's mapping is gone once the key is read
        assert str(ceremony) not in mapped.read_text()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_the_lean_reader_refuses_what_zkey_refuses(
    case: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    corrupt, message = MALFORMED[case]
    path = tmp_path / "bad.zkey"
    path.write_bytes(corrupt(small_ceremony(tmp_path_factory).read_bytes()))
    with pytest.raises(FormatError, match=f"^{path}: ") as raised:
        read_proving_key(path)
    assert message in str(raised.value)


def test_the_lean_reader_refuses_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.zkey").write_bytes(b"")
    with pytest.raises(FormatError, match=r"empty\.zkey: not a zkey file"):
        read_proving_key(tmp_path / "empty.zkey")


def test_snarkjs_reads_our_key_as_we_wrote_it(dev_key: tuple[ProvingKey, Path], tmp_path: Path) -> None:
    pk, path = dev_key
    exported = snarkjs.export_verification_key(path, tmp_path / "vk.json")
    ours = snarkjs_json.verifying_key_to_json(pk.vk)
    for field in ("nPublic", "vk_alpha_1", "vk_beta_2", "vk_gamma_2", "vk_delta_2", "IC"):
        assert exported[field] == ours[field], field


def test_our_proof_verifies_in_py_ecc_solidity_and_snarkjs(
    dev_key: tuple[ProvingKey, Path], chain_a: Chain, tmp_path: Path
) -> None:
    pk, _ = dev_key
    witness = small_witness(12, 34)
    proof = prove(pk, witness)
    public = _public(witness)
    verifier = deploy_verifier(chain_a, pk.vk)
    assert verify(pk.vk, public, proof)
    assert _solidity_accepts(verifier, public, proof)
    assert _snarkjs_accepts(tmp_path, pk, public, proof)


def _forgeries(public: list[int], proof: Proof) -> dict[str, tuple[list[int], Proof]]:
    (ax, ay), (cx, cy) = proof.a, proof.c
    return {
        "one public input changed": ([public[0] + 1, *public[1:]], proof),
        "A negated": (public, replace(proof, a=(ax, (-ay) % P))),
        "C replaced by A": (public, replace(proof, c=proof.a)),
        "B's halves swapped": (public, replace(proof, b=(proof.b[0][::-1], proof.b[1][::-1]))),
        "C off the curve": (public, replace(proof, c=(cx, cy ^ 1))),
    }


@pytest.mark.parametrize(
    "forgery",
    ["one public input changed", "A negated", "C replaced by A", "B's halves swapped", "C off the curve"],
)
def test_a_tampered_proof_is_rejected_by_all_three_verifiers(
    forgery: str, dev_key: tuple[ProvingKey, Path], chain_a: Chain, tmp_path: Path
) -> None:
    pk, _ = dev_key
    witness = small_witness(5, 6)
    public, proof = _forgeries(_public(witness), prove(pk, witness))[forgery]
    verifier = deploy_verifier(chain_a, pk.vk)
    assert not verify(pk.vk, public, proof)
    assert not _solidity_accepts(verifier, public, proof)
    assert not _snarkjs_accepts(tmp_path, pk, public, proof)


def test_snarkjs_proves_with_our_key_and_we_verify_it(
    dev_key: tuple[ProvingKey, Path], tmp_path: Path
) -> None:
    pk, path = dev_key
    witness = small_witness(7, 8)
    wtns.write(witness, tmp_path / "w.wtns")
    proof_json, public_json = snarkjs.prove(
        path, tmp_path / "w.wtns", tmp_path / "p.json", tmp_path / "s.json"
    )
    proof = snarkjs_json.proof_from_json(proof_json, "snarkjs proof")
    public = snarkjs_json.public_from_json(public_json, "snarkjs public")
    assert public == _public(witness)
    assert verify(pk.vk, public, proof)


def test_we_prove_with_a_real_ceremony_key_and_snarkjs_accepts(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    ceremony = zkey.read(small_ceremony(tmp_path_factory))
    assert not ceremony.development
    witnesses = [small_witness(a, a + 1) for a in (2, 3, 4)]
    proofs = [prove(ceremony, w) for w in witnesses]
    assert _snarkjs_accepts(tmp_path, ceremony, _public(witnesses[0]), proofs[0])
    assert verify_batch(ceremony.vk, [(_public(w), p) for w, p in zip(witnesses, proofs, strict=True)])
    assert not verify_batch(
        ceremony.vk, [(_public(witnesses[0]), proofs[1]), (_public(witnesses[1]), proofs[1])]
    )


def test_two_proofs_of_one_witness_differ_and_both_verify(dev_key: tuple[ProvingKey, Path]) -> None:
    pk, _ = dev_key
    witness = small_witness(9, 9)
    first, second = prove(pk, witness), prove(pk, witness)
    assert first != second  # fresh r and s: proofs are zero-knowledge, not deterministic
    assert verify(pk.vk, _public(witness), first) and verify(pk.vk, _public(witness), second)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w[:-1], "has 7 wires; this key's circuit has 8"),
        (lambda w: [2, *w[1:]], "wire 0 of a witness is the constant 1"),
        (lambda w: [*w[:-1], R], r"field element in \[0, r\)"),
    ],
)
def test_a_malformed_witness_is_refused(
    change: object, message: str, dev_key: tuple[ProvingKey, Path]
) -> None:
    pk, _ = dev_key
    with pytest.raises(ProverError, match=message):
        prove(pk, change(small_witness(1, 2)))  # type: ignore[operator]


def test_the_worker_process_proves_and_reports_bad_keys(
    dev_key: tuple[ProvingKey, Path], tmp_path: Path
) -> None:
    pk, path = dev_key
    witness = small_witness(3, 4)
    with ProverWorker({"small": path}) as worker:
        assert worker.load() == {"small": pk.n_vars}
        proof = worker.submit("small", witness).result(timeout=240)
        assert verify(pk.vk, _public(witness), proof)
        with pytest.raises(KeyError, match="no proving key named 'large'"):
            worker.submit("large", witness).result(timeout=60)
    (tmp_path / "broken.zkey").write_bytes(b"zkey" + bytes(20))
    with (
        ProverWorker({"broken": tmp_path / "broken.zkey"}) as worker,
        pytest.raises(ValueError, match=r"broken\.zkey"),
    ):
        worker.load()


def test_a_worker_process_exits_when_its_parent_is_killed(dev_key: tuple[ProvingKey, Path]) -> None:
    """SIGKILL leaves the parent no chance to shut its workers down: they notice and exit by themselves."""
    _, path = dev_key
    script = (
        "import os, sys, time\n"
        "from proofs.groth16.worker import ProverWorker\n"
        "worker = ProverWorker({'small': sys.argv[1]})\n"
        "print(worker.submit_call(os.getpid).result(timeout=120), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    child: psutil.Process | None = None
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.ppid() == parent.pid
        parent.kill()
        parent.wait(timeout=30)
        child.wait(timeout=30)  # psutil.TimeoutExpired if the worker outlives its parent
    finally:
        parent.kill()
        if child is not None and child.is_running():
            child.kill()


def test_the_kernels_load_from_the_disk_cache_in_a_new_process(dev_key: tuple[ProvingKey, Path]) -> None:
    """A new process proves without compiling: every kernel it runs comes from numba's on-disk cache."""
    _, path = dev_key
    prove(zkey.read(path), small_witness(1, 1))  # fills the cache if this process compiled anything
    script = (
        "import sys\n"
        "from numba.core.registry import CPUDispatcher\n"
        "from proofs.formats import zkey\n"
        "from proofs.groth16.prover import prove\n"
        "from tests.snarkjs import small_witness\n"
        "prove(zkey.read(sys.argv[1]), small_witness(1, 1))\n"
        "import gc\n"
        "misses = [d.py_func.__qualname__ for d in gc.get_objects() if isinstance(d, CPUDispatcher)\n"
        "          and any(d.stats.cache_misses.values())]\n"
        "print('MISSES', misses)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
        env={**os.environ},
    ).stdout
    assert "MISSES []" in out, out


def test_warm_compiles_every_kernel_the_setup_and_a_proof_need() -> None:
    """`python -m proofs.groth16 warm` (run by `make setup`) fills numba's cache: run again, it compiles
    nothing, and its last steps are a whole development setup, a proof read from the key file and the
    batch circuit's compiled witness."""
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "proofs.groth16", "warm"],
            capture_output=True,
            text=True,
            timeout=280,
            check=True,
        )
        assert "kernels 10/11: a proof from the key file" in done.stderr, done.stderr
        assert "kernels 11/11: the batch circuit's compiled witness" in done.stderr, done.stderr
    assert "kernels ready in" in done.stderr and ": 0 functions compiled" in done.stderr, done.stderr
