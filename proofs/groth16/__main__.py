"""`python -m proofs.groth16`: prove and verify from files, as `snarkjs groth16 prove|verify` do.

    python -m proofs.groth16 prove circuit.zkey witness.wtns proof.json public.json
    python -m proofs.groth16 verify verification_key.json public.json proof.json
    python -m proofs.groth16 warm

The files are snarkjs's own formats, so either tool can check the other's work. `prove --timings` prints
the seconds spent reading the files, proving and in each phase of the proof, as JSON
(benchmarks/prover.py reads it). `warm` compiles every kernel of the setup and the prover into numba's
disk cache, with progress (`make setup` runs it once): on a fresh machine that takes a minute or two,
which the first proof would otherwise spend.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from proofs.bn254 import field
from proofs.formats import FormatError, snarkjs_json, wtns
from proofs.groth16.keys import read_proving_key
from proofs.groth16.prover import ProverError, prove, record_phases


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{path}: {error}") from error


@click.group()
def main() -> None:
    """Groth16 proofs with xrelay's prover and verifier, on snarkjs's file formats."""


@main.command("prove")
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("witness", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("proof_out", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("public_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timings", is_flag=True, help="print the seconds spent reading and proving, as JSON")
def prove_command(key: Path, witness: Path, proof_out: Path, public_out: Path, timings: bool) -> None:
    """Prove WITNESS (.wtns) with KEY (.zkey); write the proof and public signals as snarkjs JSON."""
    start = time.perf_counter()
    try:
        pk = read_proving_key(key)
        w = wtns.read(witness)
        public = w[1 : pk.n_public + 1]
        plain = field.limbs(w)  # the prover's form; the list of ints goes before the proof
        del w
        loaded = time.perf_counter()
        with record_phases() as phases:
            proof = prove(pk, plain)
    except (FormatError, ProverError) as error:
        raise click.ClickException(str(error)) from error
    proved = time.perf_counter()
    proof_out.write_text(json.dumps(snarkjs_json.proof_to_json(proof), indent=1) + "\n")
    public_out.write_text(json.dumps(snarkjs_json.public_to_json(public)) + "\n")
    if timings:
        phases["witness"] = proved - loaded - sum(phases.values())
        report = {"read_seconds": loaded - start, "prove_seconds": proved - loaded, "phases": phases}
        click.echo(json.dumps(report))


@main.command("verify")
@click.argument("vk_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("public_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("proof_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_command(vk_path: Path, public_path: Path, proof_path: Path) -> None:
    """Verify a proof (snarkjs JSON) against a verification key and public signals; exit 1 if invalid."""
    from proofs.groth16.verifier import verify  # noqa: PLC0415  (py_ecc: imported only for `verify`)

    try:
        vk = snarkjs_json.verifying_key_from_json(_json(vk_path), str(vk_path))
        public = snarkjs_json.public_from_json(_json(public_path), str(public_path))
        proof = snarkjs_json.proof_from_json(_json(proof_path), str(proof_path))
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    if not verify(vk, public, proof):
        click.echo("INVALID proof")
        sys.exit(1)
    click.echo("OK")


@main.command("warm")
def warm_command() -> None:
    """Compile every kernel of the setup and the prover into numba's disk cache now, with progress.

    A fresh machine takes a minute or two (numba compiles each kernel for this CPU); after that, and
    until the kernels' sources change, this loads them from the cache in seconds."""
    from proofs.groth16 import warm  # noqa: PLC0415  (rich, py_ecc and the setup: not for `prove`)

    warm.warm()


if __name__ == "__main__":
    main()
