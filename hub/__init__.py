"""The shared side of the network: L1 indexer, aggregated tree, proof API and the bus protocol.

Empty until the interop issue builds it; see docs/architecture.md.
"""
