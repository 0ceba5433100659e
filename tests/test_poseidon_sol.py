"""The generated Solidity Poseidon libraries (PoseidonT2..T7) on anvil, against proofs.poseidon."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from bridge_contracts import poseidon_gen
from bridge_contracts.chain import Chain, LinkError, decode_revert, library_placeholder, link
from bridge_contracts.deploy import POSEIDON_LIBRARIES, deploy_poseidon
from proofs.field import R
from proofs.poseidon import poseidon

EIP170_LIMIT = 24_576
# Gas of the best public Solidity implementation (FACTS.md), per width t; ours must not be worse.
REFERENCE_GAS = {2: 13_500, 3: 21_100, 4: 37_600, 5: 54_300, 6: 74_000}

field_elements = st.one_of(
    st.sampled_from([0, 1, 2, R - 2, R - 1]),
    st.integers(min_value=R - 1000, max_value=R - 1),
    st.integers(min_value=0, max_value=R - 1),
)


def _harness(chain: Chain) -> tuple[Contract, dict[str, str]]:
    libraries = deploy_poseidon(chain)
    return chain.deploy("PoseidonHarness", libraries=libraries), libraries


def _hash(harness: Contract, inputs: list[int]) -> tuple[int, int]:
    digest, gas = getattr(harness.functions, f"hashT{len(inputs) + 1}")(inputs).call()
    return int(digest), int(gas)


def test_generated_sources_are_current() -> None:
    assert poseidon_gen.check() == []


def test_libraries_fit_eip170_and_beat_the_reference_gas(chain_a: Chain) -> None:
    harness, libraries = _harness(chain_a)
    assert sorted(libraries) == sorted(POSEIDON_LIBRARIES)
    for t in range(2, 8):
        code = chain_a.w3.eth.get_code(chain_a.w3.to_checksum_address(libraries[f"PoseidonT{t}"]))
        assert 0 < len(code) < EIP170_LIMIT, t
        inputs = list(range(1, t))
        digest, gas = _hash(harness, inputs)
        assert digest == poseidon(inputs)
        if t in REFERENCE_GAS:
            assert gas <= REFERENCE_GAS[t], (t, gas)


def test_known_vector_on_chain(chain_a: Chain) -> None:
    harness, libraries = _harness(chain_a)
    expected = 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A
    assert _hash(harness, [1, 2])[0] == expected
    t3 = chain_a.contract("PoseidonT3", libraries["PoseidonT3"])
    assert t3.functions.hash([1, 2]).call() == expected  # the library called directly, too


def test_solidity_equals_python_on_random_inputs(chain_a: Chain) -> None:
    harness, _ = _harness(chain_a)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        for n in range(1, 7):
            inputs = data.draw(st.lists(field_elements, min_size=n, max_size=n), label=f"{n} inputs")
            assert _hash(harness, inputs)[0] == poseidon(inputs)

    check()


def test_inputs_not_in_the_field_revert_with_their_index(chain_a: Chain) -> None:
    harness, _ = _harness(chain_a)

    @settings(max_examples=15, deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        n = data.draw(st.integers(min_value=1, max_value=6), label="inputs")
        inputs = data.draw(st.lists(field_elements, min_size=n, max_size=n), label="valid")
        index = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
        inputs[index] = data.draw(st.sampled_from([R, R + 1, 2**256 - 1]), label="bad")
        for later in range(index + 1, n):  # an earlier bad input is the one reported
            inputs[later] = data.draw(st.sampled_from([0, R]), label="later")
        with pytest.raises(ContractLogicError) as raised:
            _hash(harness, inputs)
        data_hex = raised.value.data
        assert isinstance(data_hex, str)
        assert decode_revert(data_hex) == f"InputNotInField(index={index})"

    check()


def test_unlinked_library_calls_are_refused(chain_a: Chain) -> None:
    libraries = deploy_poseidon(chain_a)
    partial = {name: address for name, address in libraries.items() if name != "PoseidonT6"}
    with pytest.raises(LinkError, match="not linked: PoseidonT6"):
        chain_a.deploy("PoseidonHarness", libraries=partial)
    with pytest.raises(
        LinkError, match="PoseidonT2, PoseidonT3, PoseidonT4, PoseidonT5, PoseidonT6, PoseidonT7"
    ):
        chain_a.deploy("PoseidonHarness")
    with pytest.raises(LinkError, match="no valid address"):
        chain_a.deploy("PoseidonHarness", libraries={**libraries, "PoseidonT3": "0x1234"})


def test_placeholder_is_solc_s() -> None:
    """solc's placeholder: the first 34 hex digits of keccak256 of the fully qualified name."""
    placeholder = library_placeholder("src/generated/PoseidonT3.sol:PoseidonT3")
    assert len(placeholder) == 40 and placeholder.startswith("__$") and placeholder.endswith("$__")
    code = "0x73" + placeholder + "00"
    address = "0x" + "ab" * 20
    assert link("X", code, {"src/generated/PoseidonT3.sol:PoseidonT3": address}) == "0x73" + "ab" * 20 + "00"
    assert link("X", code, {"PoseidonT3": address}) == "0x73" + "ab" * 20 + "00"
