"""Benchmarks, run by `make bench`: each module is a script (`python -m benchmarks.<name>`)."""
