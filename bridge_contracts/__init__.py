"""The contracts and all talk to them: Solidity sources, the pinned toolchain, compiled artifacts,
deployment, and the JSON-RPC client the rest of xrelay uses to reach a chain."""
