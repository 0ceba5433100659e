"""Gas of atomic swaps (bridge_contracts/src/SwapDesk.sol), per phase.

Starts three anvil nodes: the L1 (900) with the Hub and the capacity-8 verifier of the tests'
development key (tests/settlement.py), and chains A (901) and B (902), each with its router, Outbox,
Inbox and SwapDesk, X (gold, an origin token of A) and Y (a stablecoin of B), the same terms registered on
both desks, B's price and inventory set (`tests.test_swap_desk.build`). Every message is settled on L1
with a real Groth16 proof and executed by the destination's Inbox at the node's gas estimate, as the
daemon's executor sends it (plus its allowance for a BridgedToken's deployment on an asset's first
arrival). Figures are gasUsed, the 21,000 base and calldata (the message's proof) included:

- initiate (phase 1, on A): the desk's first swap (its nonce and the router's locked balance written from
  zero), then the steady state.
- phase 2 (on B, the Inbox executing the phase-1 message): the first swap, where X's first arrival deploys
  its BridgedToken; then a swap (X kept, Y sent to desk A) and a refund (slippage: X sent back).
- phase 3 (on A, the Inbox executing B's result): the first payment, where Y's first arrival deploys its
  BridgedToken; then a payment of Y and a refund of X.

    python -m benchmarks.swap_gas [--out FILE]
"""

from __future__ import annotations

import sys

from benchmarks import arguments, gas_table, local_chain, report
from tests.test_swap_desk import L1, A, B, build, swap_gas


def measure() -> dict[str, int]:
    with local_chain(L1) as l1, local_chain(A) as a, local_chain(B) as b:
        return swap_gas(build(l1, a, b))


def main(argv: list[str] | None = None) -> int:
    args = arguments("swap_gas", __doc__ or "").parse_args(argv)
    results = measure()
    report(gas_table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
