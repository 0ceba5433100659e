"""Development tooling, apart from the daemon: the devnet (`devnet`), the processes of a local
network (`services`) and `xrelay demo` (`demo`). Nothing here runs in production."""
