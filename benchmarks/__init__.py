"""Benchmarks, run by `make bench`: each module is a script (`python -m benchmarks.<name>`) that prints
a table and, with `--out FILE`, writes its figures as JSON."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge_contracts import anvil
from bridge_contracts.chain import Chain


def arguments(module: str, doc: str) -> argparse.ArgumentParser:
    """The command line every benchmark shares: `--out FILE`; a benchmark may add its own."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    return parser


def report(table: str, results: dict[str, Any], out: Path | None) -> None:
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out}")


def gas_table(results: dict[str, int]) -> str:
    """Gas per transaction, one row each."""
    width = max(map(len, results))
    return "\n".join(
        [f"{'transaction':<{width}}{'gas':>10}"] + [f"{n:<{width}}{g:>10,}" for n, g in results.items()]
    )


@contextmanager
def local_chain(chain_id: int) -> Iterator[Chain]:
    """A fresh anvil node for one benchmark, signed for by dev account 0; stopped afterwards."""
    with tempfile.TemporaryDirectory() as logs:
        node = anvil.start(chain_id, Path(logs) / "anvil.log")
        try:
            yield Chain(node.rpc_url, anvil.dev_account(0))
        finally:
            node.stop()
