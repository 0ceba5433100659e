"""Message rows for the tests of the daemon's store and of what reads it (CLI, admin API)."""

from __future__ import annotations

from relayer.store import MessageRow

ASSET = "0x" + "ab" * 32


def message_row(
    nonce: int, *, direction: str = "in", source: int | None = None, amount: int = 0, leaf: int = 2**250
) -> MessageRow:
    """A message between bank-b (902) and bank-a (901): from bank-b when incoming, from bank-a when
    outgoing, unless `source` says otherwise."""
    if source is None:
        source = 902 if direction == "in" else 901
    return MessageRow(
        id=f"{source}:{nonce}",
        direction=direction,
        peer="bank-b",
        source_chain_id=source,
        dest_chain_id=901 if source == 902 else 902,
        nonce=nonce,
        sender="0x" + "11" * 20,
        target="0x" + "22" * 20,
        asset_id=ASSET,
        amount=amount,
        data=b"\xca\xfe",
        asset_data=b"",
        leaf=leaf,
        block_number=12,
        sent_at=1.5,
    )
