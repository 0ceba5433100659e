"""Gas of sending a message through the Outbox (bridge_contracts/src/Outbox.sol), per transaction.

Starts its own anvil, deploys the asset layer and the Outbox, and sends each kind of message three
times; the figure is the third transaction's gasUsed (steady state: the nonce and outboxHash slots
are already non-zero, the Poseidon libraries are cold in every transaction, as in real use). It
includes the 21,000 base and calldata.

    python -m benchmarks.outbox_gas [--out FILE]
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from web3.contract.contract import ContractFunction

from benchmarks import arguments, gas_table, local_chain, report
from bridge_contracts import anvil, deploy

CHAIN_ID, DEST = 901, 902
TARGET = anvil.dev_account(7).address


def measure() -> dict[str, int]:
    with local_chain(CHAIN_ID) as chain:
        router = deploy.deploy_asset_router(chain)
        outbox = deploy.deploy_outbox(chain, router.address, owner=chain.signer.address)
        chain.send(router.functions.connect(outbox.address, anvil.dev_account(2).address))
        chain.send(outbox.functions.setDestination(DEST, True))
        token = deploy.deploy_dev_token(chain, "Deposit", "DEP")
        chain.send(token.functions.mint(chain.signer.address, 10**24))
        chain.send(token.functions.approve(router.address, 2**256 - 1))
        chain.send(router.functions.registerToken(token.address))
        native = router.functions.nativeAssetId().call()
        token_id = router.functions.assetIdOfToken(token.address).call()
        kinds: dict[str, tuple[Callable[[], ContractFunction], int]] = {
            "send, no data": (lambda: outbox.functions.send(DEST, TARGET, b""), 0),
            "send, 100 bytes of data": (lambda: outbox.functions.send(DEST, TARGET, b"\x01" * 100), 0),
            "sendWithAsset, native": (
                lambda: outbox.functions.sendWithAsset(DEST, TARGET, b"", native, 10**18),
                10**18,
            ),
            "sendWithAsset, ERC-20": (
                lambda: outbox.functions.sendWithAsset(DEST, TARGET, b"", token_id, 10**18),
                0,
            ),
        }
        results: dict[str, int] = {}
        for name, (call, value) in kinds.items():
            for _ in range(3):
                receipt = chain.send(call(), value=value)
            results[name] = int(receipt["gasUsed"])
        return results


def main(argv: list[str] | None = None) -> int:
    args = arguments("outbox_gas", __doc__ or "").parse_args(argv)
    results = measure()
    report(gas_table(results), results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
