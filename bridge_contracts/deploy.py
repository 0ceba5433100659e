"""Deploy xrelay's contracts on a chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from web3.contract import Contract

from bridge_contracts.chain import Chain

POSEIDON_LIBRARIES = tuple(f"PoseidonT{t}" for t in range(2, 8))


def deploy_asset_router(chain: Chain, *, native_name: str = "Ether", native_symbol: str = "ETH") -> Contract:
    """The chain's AssetRouter; its deployer (the chain operator) later connects the Outbox and Inbox."""
    return chain.deploy("AssetRouter", native_name, native_symbol)


def deploy_dev_token(
    chain: Chain, name: str, symbol: str, *, decimals: int = 18, transfer_fee_bps: int = 0
) -> Contract:
    """A DevToken (DEVNET AND TESTS ONLY): freely minted by its deployer."""
    return chain.deploy("DevToken", name, symbol, decimals, transfer_fee_bps)


# The widths xrelay's contracts hash with: T3 for Merkle nodes and the rolling hash, T6 for message leaves.
PROTOCOL_POSEIDON = ("PoseidonT3", "PoseidonT6")


def deploy_poseidon(chain: Chain, names: Sequence[str] = POSEIDON_LIBRARIES) -> dict[str, str]:
    """Poseidon libraries (by default all of PoseidonT2..PoseidonT7, 1..6 inputs): library name ->
    address, to link contracts that call them (`chain.deploy(name, ..., libraries=...)`)."""
    return {name: chain.deploy(name).address for name in names}


def deploy_outbox(
    chain: Chain, router: str, *, owner: str, poseidon: Mapping[str, str] | None = None
) -> Contract:
    """The chain's Outbox over its AssetRouter, owned by `owner` (who sets its destinations), linked to
    the chain's Poseidon libraries (deployed here when not given). The router's deployer must then
    connect it (`AssetRouter.connect`)."""
    libraries = poseidon if poseidon is not None else deploy_poseidon(chain, PROTOCOL_POSEIDON)
    return chain.deploy("Outbox", router, owner, libraries=libraries)


def deploy_hub(chain: Chain, owner: str, poseidon: Mapping[str, str] | None = None) -> Contract:
    """The L1 Hub, owned by `owner` (governance: registers chains, operators and verifiers), linked
    to the L1's Poseidon libraries (deployed here when not given)."""
    libraries = poseidon if poseidon is not None else deploy_poseidon(chain, PROTOCOL_POSEIDON)
    return chain.deploy("Hub", owner, libraries=libraries)


def deploy_inbox(
    chain: Chain, router: str, owner: str, l1_chain_id: int, poseidon: Mapping[str, str] | None = None
) -> Contract:
    """The chain's Inbox over its AssetRouter, owned by `owner` (the operator, who imports the L1
    Hub's roots), linked to the chain's Poseidon libraries (deployed here when not given). The
    router's deployer must then connect it (`AssetRouter.connect`)."""
    libraries = poseidon if poseidon is not None else deploy_poseidon(chain, PROTOCOL_POSEIDON)
    return chain.deploy("Inbox", router, owner, l1_chain_id, libraries=libraries)
