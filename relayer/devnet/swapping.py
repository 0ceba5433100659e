"""Atomic swaps on a running devnet (DEVNET ONLY): what `xrelay demo`, the end-to-end tests and
`make bench-swaps` do with them, through the daemons' admin APIs and the desks, as operators and a
user would.

`SwapPair(manifest, "bank-a", "bank-b")`: bank-a's users pay bank-a's tokenized gold (X) for bank-b's
deposit token (Y, its stablecoin), which bank-b's desk holds. `agree` has bank-a's operator propose terms
and bank-b's accept them (both daemons register them on their desks); `quote` sets bank-b's price;
`initiate` starts a swap as the devnet user; `wait` follows swaps until both desks have their result;
`ledger` says where every unit of X and Y is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD

from bridge_contracts import anvil
from bridge_contracts.chain import Chain
from bridge_contracts.swaps import Swap, SwapState, Terms
from relayer.devnet import devnet
from relayer.devnet.services import admin_token

TIMEOUT = 300.0
FINAL = (SwapState.COMPLETED, SwapState.REFUNDED)


class SwapTimeout(devnet.DevnetError):
    """Swaps that did not end in time."""


@dataclass(frozen=True)
class Ended:
    """A swap as both desks have it once it ended."""

    swap_id: bytes
    on_a: Swap
    on_b: Swap  # state NONE when B bounced phase 1 (it never ran)


class SwapPair:
    def __init__(self, manifest: dict[str, Any], a: str = "bank-a", b: str = "bank-b") -> None:
        self.manifest = manifest
        self.a, self.b = self._entry(a), self._entry(b)
        self.user: LocalAccount = anvil.dev_account(devnet.USER_ACCOUNT)
        self.on_a, self.on_b = Chain(self.a["rpc_url"], self.user), Chain(self.b["rpc_url"], self.user)
        self.desk_a = self.on_a.contract("SwapDesk", self.a["contracts"]["swap_desk"])
        self.desk_b = self.on_b.contract("SwapDesk", self.b["contracts"]["swap_desk"])
        self.router_a = self.on_a.contract("AssetRouter", self.a["contracts"]["asset_router"])
        self.router_b = self.on_b.contract("AssetRouter", self.b["contracts"]["asset_router"])
        self.gold = self.on_a.contract("DevToken", self.a["contracts"]["gold_token"])
        self.stable = self.on_b.contract("DevToken", self.b["contracts"]["deposit_token"])
        self.asset_x = bytes(self.router_a.functions.assetIdOfToken(self.gold.address).call())
        self.asset_y = bytes(self.router_b.functions.assetIdOfToken(self.stable.address).call())

    def _entry(self, name: str) -> dict[str, Any]:
        return next(c for c in self.manifest["chains"] if c["name"] == name)

    # --- the operators ------------------------------------------------------------------------

    def admin(self, entry: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
        """A request to an institution's daemon's admin API; AssertionError-free: DevnetError on an error."""
        response = requests.request(
            method,
            f"http://{entry['admin']}{path}",
            json=body,
            headers={"Authorization": f"Bearer {admin_token(entry['name'])}"},
            timeout=120,
        )
        if response.status_code >= 400:
            raise devnet.DevnetError(
                f"{entry['name']}: {method} {path}: {response.status_code} {response.text}"
            )
        return response.json()

    def terms(self, *, window: int, price_min: int, price_max: int, fee_bps: int = 0, **kw: int) -> Terms:
        return Terms(
            chain_a=self.a["chain_id"],
            desk_a=self.desk_a.address,
            chain_b=self.b["chain_id"],
            desk_b=self.desk_b.address,
            asset_x=self.asset_x,
            asset_y=self.asset_y,
            price_min=price_min,
            price_max=price_max,
            fee_bps=fee_bps,
            min_amount_x=kw.get("min_amount_x", 1),
            max_amount_x=kw.get("max_amount_x", 10**30),
            last_start=int(time.time()) + kw.get("open_for", 86_400),
            window=window,
        )

    def agree(self, terms: Terms, *, timeout: float = 120.0) -> str:
        """bank-a's operator proposes `terms`, bank-b's accepts them; returns the terms id once both
        desks have them."""
        proposed = self.admin(
            self.a, "POST", "/v1/swaps/terms", {"peer": self.b["name"], "terms": terms.to_json()}
        )
        terms_id: str = proposed["terms_id"]
        self._until(
            timeout, f"bank-b offered {terms_id}", lambda: self._terms_status(self.b, terms_id) == "offered"
        )
        self.admin(self.b, "POST", f"/v1/swaps/terms/{terms_id}/accept")
        key = bytes.fromhex(terms_id[2:])
        self._until(
            timeout,
            f"{terms_id} on both desks",
            lambda: all(desk.functions.termsOf(key).call()[-1] != 0 for desk in (self.desk_a, self.desk_b)),
        )
        return terms_id

    def _terms_status(self, entry: dict[str, Any], terms_id: str) -> str | None:
        found = [t for t in self.admin(entry, "GET", "/v1/swaps/terms") if t["terms_id"] == terms_id]
        return found[0]["status"] if found else None

    def quote(self, price: int) -> None:
        """bank-b's operator quotes `price` (Y base units per 1e18 X base units)."""
        body = {
            "asset_x": "0x" + self.asset_x.hex(),
            "asset_y": "0x" + self.asset_y.hex(),
            "price": str(price),
        }
        self.admin(self.b, "POST", "/v1/swaps/price", body)

    # --- the user -----------------------------------------------------------------------------

    def initiate(self, terms_id: str, amount_x: int, min_amount_y: int) -> bytes:
        """The devnet user swaps `amount_x` of gold for at least `min_amount_y`: the swap id."""
        self.on_a.send(self.gold.functions.approve(self.desk_a.address, amount_x))
        receipt = self.on_a.send(
            self.desk_a.functions.initiate(bytes.fromhex(terms_id[2:]), amount_x, min_amount_y)
        )
        (event,) = self.desk_a.events.SwapRecorded().process_receipt(receipt, errors=DISCARD)
        return bytes(event["args"]["swapId"])

    def state(self, desk: Contract, swap_id: bytes) -> Swap:
        return Swap.from_tuple(desk.functions.swapOf(swap_id).call())

    def wait(self, swap_ids: list[bytes], *, timeout: float = TIMEOUT, on_change: Any = None) -> list[Ended]:
        """Until every swap has its result on A (phase 3 ran, or a bounced phase 1 was reclaimed);
        `on_change(ended, total)` is called as they end."""
        deadline = time.monotonic() + timeout
        ended: dict[bytes, Ended] = {}
        while time.monotonic() < deadline:
            for swap_id in swap_ids:
                if swap_id in ended:
                    continue
                on_a = self.state(self.desk_a, swap_id)
                if on_a.state in FINAL:
                    ended[swap_id] = Ended(swap_id, on_a, self.state(self.desk_b, swap_id))
                    if on_change is not None:
                        on_change(len(ended), len(swap_ids))
            if len(ended) == len(swap_ids):
                return [ended[s] for s in swap_ids]
            time.sleep(0.3)
        open_ = [s.hex() for s in swap_ids if s not in ended]
        raise SwapTimeout(f"{len(open_)} swap(s) not ended within {timeout:.0f} s: {open_[:5]}")

    # --- where the value is ---------------------------------------------------------------------

    def ledger(self) -> dict[str, int]:
        """Every place X and Y can be: the user's, both desks' balances and `held`, what each origin
        router has locked, the bridged supplies, and what L1 says each chain holds."""
        hub = Chain(self.manifest["l1"]["rpc_url"], self.user).contract(
            "Hub", self.manifest["l1"]["contracts"]["hub"]
        )
        x_on_b = self._bridged(self.on_b, self.router_b, self.asset_x)
        y_on_a = self._bridged(self.on_a, self.router_a, self.asset_y)
        out = {
            "X user": self.gold.functions.balanceOf(self.user.address).call(),
            "X desk A": self.gold.functions.balanceOf(self.desk_a.address).call(),
            "X locked on A": self.router_a.functions.locked(self.asset_x).call(),
            "X bridged on B": 0 if x_on_b is None else x_on_b.functions.totalSupply().call(),
            "X desk B": 0 if x_on_b is None else x_on_b.functions.balanceOf(self.desk_b.address).call(),
            "X held by desk B": 0 if x_on_b is None else self.desk_b.functions.held(x_on_b.address).call(),
            "X of B on L1": hub.functions.balances(self.b["chain_id"], self.asset_x).call(),
            "Y user": 0 if y_on_a is None else y_on_a.functions.balanceOf(self.user.address).call(),
            "Y desk A": 0 if y_on_a is None else y_on_a.functions.balanceOf(self.desk_a.address).call(),
            "Y locked on B": self.router_b.functions.locked(self.asset_y).call(),
            "Y bridged on A": 0 if y_on_a is None else y_on_a.functions.totalSupply().call(),
            "Y desk B": self.stable.functions.balanceOf(self.desk_b.address).call(),
            "Y held by desk B": self.desk_b.functions.held(self.stable.address).call(),
            "Y of A on L1": hub.functions.balances(self.a["chain_id"], self.asset_y).call(),
        }
        return out

    @staticmethod
    def _bridged(chain: Chain, router: Contract, asset: bytes) -> Contract | None:
        token = router.functions.assets(asset).call()[2]
        return None if int(token, 16) == 0 else chain.contract("BridgedToken", token)

    @staticmethod
    def _until(timeout: float, what: str, check: Any) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.25)
        raise devnet.DevnetError(f"waited {timeout:.0f} s for {what}")


def settled(ledger: dict[str, int]) -> list[str]:
    """What does not add up in a ledger with nothing in flight (empty: everything does): X locked on A
    is exactly X bridged on B, which L1 says B holds; Y likewise; desks hold exactly what they own."""
    problems = []
    checks = [
        ("X locked on A", "X bridged on B"),
        ("X bridged on B", "X of B on L1"),
        ("Y locked on B", "Y bridged on A"),
        ("Y bridged on A", "Y of A on L1"),
        ("X desk B", "X held by desk B"),
        ("Y desk B", "Y held by desk B"),
    ]
    for left, right in checks:
        if ledger[left] != ledger[right]:
            problems.append(f"{left} {ledger[left]} != {right} {ledger[right]}")
    for idle in ("X desk A", "Y desk A"):
        if ledger[idle]:
            problems.append(f"{idle} holds {ledger[idle]}: value stuck")
    return problems
