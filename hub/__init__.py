"""The shared side of the network: the L1 indexer and its aggregated tree (indexer, store), the proof
API and its client (api, client), the hub service that runs them (service, config, cli), and the bus
protocol every daemon speaks (bus: topics, signed envelopes, the MQTT client; broker: the embedded
broker for the devnet and tests).

Imports run hub -> bridge_contracts -> proofs; the hub never imports the relayer.
"""
