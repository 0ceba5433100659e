"""Deploy xrelay's contracts on a chain."""

from __future__ import annotations

from web3.contract import Contract

from bridge_contracts.chain import Chain


def deploy_asset_router(chain: Chain, *, native_name: str = "Ether", native_symbol: str = "ETH") -> Contract:
    """The chain's AssetRouter; its deployer (the chain operator) later connects the Outbox and Inbox."""
    return chain.deploy("AssetRouter", native_name, native_symbol)


def deploy_dev_token(
    chain: Chain, name: str, symbol: str, *, decimals: int = 18, transfer_fee_bps: int = 0
) -> Contract:
    """A DevToken (DEVNET AND TESTS ONLY): freely minted by its deployer."""
    return chain.deploy("DevToken", name, symbol, decimals, transfer_fee_bps)
