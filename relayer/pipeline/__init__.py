"""The daemon's pipeline, one module per step of a message's life (DESIGN.md §3): the batcher and
prover pool, the settler and pusher on the sending side; the receiver and executor on the receiving
side. Each step reads its work from the store and writes what it did there before acting on it."""
