"""Test helpers for the L1 Hub and the Inbox: a Hub on a real anvil node that settles batches with real
Groth16 proofs (a development key for capacity 8, made once per process), and a Python mirror of its
aggregated tree that gives the MessageProof of any message it settled."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from bridge_contracts import anvil, deploy
from bridge_contracts.anvil import DEV_ACCOUNT_COUNT, dev_account
from bridge_contracts.chain import Chain, decode_revert
from bridge_contracts.messages import (
    Message,
    MessageProof,
    aggregated_leaf,
    commit_digest,
    commitment,
    force_digest,
    groth16_proof,
    priority_id,
    sign_digest,
)
from bridge_contracts.verifier_gen import deploy_verifier
from bridge_contracts.views import HubChain, hub_chain
from hub.envelope import devnet_bus_key, public_key_of
from proofs import merkle
from proofs.circuits.batch import Batch, BatchCircuit, PublicInputs
from proofs.groth16.keys import ProvingKey
from proofs.groth16.prover import prove
from proofs.groth16.setup import setup

CAPACITY = 8
DEPTH = 3
NATIVE = "0x0000000000000000000000000000000000000001"
E18 = 10**18


Groth16Args = tuple[list[int], list[list[int]], list[int]]


def events(contract: Contract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """The arguments of every `name` event of `contract` in the receipt (other contracts' are skipped)."""
    found = contract.events[name]().process_receipt(receipt, errors=DISCARD)
    return [dict(event["args"]) for event in found]


def call_error(fn: ContractFunction) -> str:
    """The decoded error of an eth_call that must revert."""
    try:
        fn.call()
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None)
    raise AssertionError("the call did not revert")


@cache
def batch_key() -> ProvingKey:
    """The development proving key of the capacity-8 batch circuit, made once per test process."""
    return setup(BatchCircuit(CAPACITY).r1cs, seed=b"xrelay tests: batch 8", development=True)


def asset_id(origin_chain_id: int, origin_token: str) -> bytes:
    return keccak(encode(["uint256", "address"], [origin_chain_id, origin_token]))


def asset_data(origin_chain_id: int, origin_token: str, name: str, symbol: str, decimals: int = 18) -> bytes:
    return encode(
        ["uint256", "address", "string", "string", "uint8"],
        [origin_chain_id, origin_token, name, symbol, decimals],
    )


def ether_data(chain_id: int) -> bytes:
    """The assetData of a chain's native token, as its AssetRouter (and the L1 Hub) gives it."""
    return asset_data(chain_id, NATIVE, "Ether", "ETH")


def message(
    source: int,
    dest: int,
    nonce: int,
    target: str,
    *,
    sender: str | None = None,
    asset: bytes = bytes(32),
    amount: int = 0,
    data: bytes = b"",
    assetdata: bytes = b"",
) -> Message:
    """A message as `source`'s Outbox would emit it (the Hub never reads the source chain)."""
    return Message(
        source_chain_id=source,
        dest_chain_id=dest,
        nonce=nonce,
        sender=sender if sender is not None else anvil.dev_account(8).address,
        target=target,
        asset_id=asset,
        amount=amount,
        data=data,
        asset_data=assetdata,
    )


@dataclass(frozen=True)
class Place:
    """Where a settled message is: its batch, its position there and the batch's aggregated leaf."""

    batch_number: int
    index: int
    batch_siblings: tuple[int, ...]
    aggregated_index: int


@dataclass(frozen=True)
class Prepared:
    """A batch ready to commit: what commitBatch takes, and the public inputs behind it."""

    public: PublicInputs
    batch: tuple[Any, ...]
    proof: Groth16Args
    signature: bytes

    def as_args(self) -> tuple[Any, ...]:
        """commitBatch's arguments."""
        return self.batch, self.proof, self.signature


@dataclass
class Settlement:
    """A Hub on `chain` (its L1), with a verifier for capacity 8 and a mirror of its aggregated tree."""

    chain: Chain
    hub: Contract
    verifier: str
    tree: merkle.KeccakTree = field(default_factory=merkle.KeccakTree)
    places: dict[bytes, Place] = field(default_factory=dict)

    @classmethod
    def deploy(cls, chain: Chain) -> Settlement:
        hub = deploy.deploy_hub(chain, chain.signer.address)
        verifier = deploy_verifier(chain, batch_key().vk)
        return cls(chain, hub, verifier.address)

    @property
    def l1(self) -> int:
        return self.chain.chain_id

    def force_signature(self, operator: LocalAccount, m: Message, body: bytes) -> bytes:
        """The source operator's signature that lets anyone force `m` (settled here) with `body`."""
        place = self.places[m.id()]
        named = priority_id(m.source_chain_id, place.batch_number, place.index, m.leaf())
        return sign_digest(operator, force_digest(named, body, l1_chain_id=self.l1, hub=self.hub.address))

    def deposit_token(
        self, chain: Chain, router: Contract, holder: LocalAccount, amount: int
    ) -> tuple[Contract, bytes]:
        """A deposit token of `chain` (deployed by chain's signer): `amount` minted to `holder`, who lets
        `router` take it; registered as an origin asset with the router and with this Hub. The token and
        its asset id."""
        token = deploy.deploy_dev_token(chain, "Bank B Deposit", "DTB")
        chain.send(token.functions.mint(holder.address, amount))
        chain.with_signer(holder).send(token.functions.approve(router.address, amount))
        chain.send(router.functions.registerToken(token.address))
        token_id = bytes(router.functions.assetIdOfToken(token.address).call())
        self.chain.send(self.hub.functions.registerAsset(chain.chain_id, token.address))
        return token, token_id

    def register(self, chain_id: int, operator: LocalAccount, *, with_verifier: bool = True) -> None:
        """Register a chain with `operator` (one of anvil's dev accounts) and the devnet's bus key of
        the same number (`devnet_bus_key`), as `xrelay devnet up` does."""
        self.chain.send(self.hub.functions.registerChain(chain_id, operator.address, True))
        index = next(i for i in range(DEV_ACCOUNT_COUNT) if dev_account(i).address == operator.address)
        self.chain.send(self.hub.functions.setBusKey(chain_id, public_key_of(devnet_bus_key(index))))
        if with_verifier:
            self.chain.send(self.hub.functions.setVerifier(chain_id, CAPACITY, self.verifier))

    def info(self, chain_id: int) -> HubChain:
        return hub_chain(self.hub, chain_id)

    def balance(self, chain_id: int, asset: bytes) -> int:
        return int(self.hub.functions.balances(chain_id, asset).call())

    def prepare(
        self,
        chain_id: int,
        messages: list[Message],
        operator: LocalAccount,
        *,
        batch_number: int | None = None,
        h_start: int | None = None,
    ) -> Prepared:
        """Prove and sign the chain's next batch of `messages` (or one with the given number / hStart)."""
        info = self.info(chain_id)
        batch = Batch(
            chain_id,
            info.next_batch if batch_number is None else batch_number,
            info.outbox_hash if h_start is None else h_start,
            tuple(m.preimage() for m in messages),
        )
        circuit = BatchCircuit(CAPACITY)
        public = circuit.public_inputs(batch)
        proof = prove(batch_key(), circuit.witness(batch, public))
        return self.sign(public, groth16_proof(proof), operator)

    def sign(
        self,
        public: PublicInputs,
        proof: tuple[list[int], list[list[int]], list[int]],
        operator: LocalAccount,
    ) -> Prepared:
        digest = commit_digest(public, CAPACITY, l1_chain_id=self.l1, hub=self.hub.address)
        return Prepared(public, commitment(public, CAPACITY), proof, sign_digest(operator, digest))

    def send(self, prepared: Prepared) -> TxReceipt:
        return self.chain.send(
            self.hub.functions.commitBatch(prepared.batch, prepared.proof, prepared.signature)
        )

    def commit(self, chain_id: int, messages: list[Message], operator: LocalAccount) -> TxReceipt:
        """Settle the chain's next batch of `messages`; remember where each message is."""
        prepared = self.prepare(chain_id, messages, operator)
        receipt = self.send(prepared)
        tree = merkle.PoseidonTree([m.leaf() for m in messages], CAPACITY)
        index = self.tree.append(aggregated_leaf(chain_id, prepared.public.batch_number, DEPTH, tree.root))
        for i, m in enumerate(messages):
            self.places[m.id()] = Place(prepared.public.batch_number, i, tuple(tree.proof(i)), index)
        assert self.tree.root == bytes(self.hub.functions.aggregatedRoot().call())
        return receipt

    def deposit(
        self, sender: LocalAccount, dest: int, target: str, data: bytes = b"", *, value: int = 0
    ) -> tuple[Message, TxReceipt]:
        """An L1 deposit; the message as the Hub emitted it."""
        receipt = self.chain.with_signer(sender).send(
            self.hub.functions.deposit(dest, target, data), value=value
        )
        [event] = events(self.hub, "DepositQueued", receipt)
        sent = Message.from_event(event["message"])
        index = self.tree.append(aggregated_leaf(self.l1, sent.nonce, 0, sent.leaf()))
        assert index == event["leafIndex"]
        self.places[sent.id()] = Place(sent.nonce, 0, (), index)
        assert self.tree.root == bytes(self.hub.functions.aggregatedRoot().call())
        return sent, receipt

    def proof(self, m: Message, size: int | None = None) -> MessageProof:
        """The proof that `m` was settled, against the aggregated root after `size` leaves (default: now)."""
        place = self.places[m.id()]
        size = self.tree.size if size is None else size
        return MessageProof(
            batch_number=place.batch_number,
            index=place.index,
            batch_siblings=place.batch_siblings,
            aggregated_index=place.aggregated_index,
            aggregated_siblings=tuple(self.tree.proof(place.aggregated_index, size)),
            aggregated_root=self.tree.root_at(size),
        )
