# xrelay — `make demo` and `make test` work on a fresh clone with Python >= 3.11 and Node.js >= 18.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := bridge_contracts/node_modules/.installed
WARM_STAMP := $(VENV)/.kernels-warm
DEMO_DIR := .xrelay/demo

BENCH_DIR := bench-results

.PHONY: setup mosquitto demo test lint typecheck unit bench bench-prover bench-relay bench-swaps contracts constraints clean

setup: $(PY_STAMP) $(NPM_STAMP) mosquitto $(WARM_STAMP)

# The real broker of `xrelay devnet up --broker mosquitto` and tests/test_broker.py (Mosquitto 2.0 or
# newer, with its dynamic security plugin): installed with apt-get when missing and we are root.
mosquitto:
	@PATH="$$PATH:/usr/sbin:/usr/local/sbin"; command -v mosquitto >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing mosquitto: apt-get install -y mosquitto"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq mosquitto >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }; \
	  else \
	    echo "mosquitto is not installed: run 'sudo apt-get install mosquitto' (macOS: 'brew install mosquitto'), then 'make setup'" >&2; \
	    exit 1; \
	  fi; }

$(PY_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Re-resolve the Python dependencies and record the versions (run the tests, then commit both files).
constraints:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	{ head -n 2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.tmp
	mv constraints.tmp constraints.txt
	touch $(PY_STAMP)

$(NPM_STAMP): bridge_contracts/package.json bridge_contracts/package-lock.json
	cd bridge_contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The prover's kernels compiled into numba's disk cache now, with progress (a minute or two on a fresh
# machine), not in the first proof of `make demo`; again when their sources change.
$(WARM_STAMP): $(PY_STAMP) $(wildcard proofs/bn254/*.py) proofs/groth16/qap.py proofs/r1cs/compiled.py
	$(BIN)/python -m proofs.groth16 warm
	touch $@

# The main job: the devnet, the hub service and two daemons; messages, a call with value and a
# tokenized asset both ways; an atomic swap of gold for a stablecoin (one completed, one refunded);
# tables of the results; everything shut down (also on failure).
demo: setup
	$(BIN)/xrelay demo --state-dir $(DEMO_DIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest

test: lint typecheck unit

# Figures, never timed assertions: each benchmark prints a table and writes JSON to $(BENCH_DIR)/.
bench: setup
	$(BIN)/python -m benchmarks.poseidon_gas --out $(BENCH_DIR)/poseidon_gas.json
	$(BIN)/python -m benchmarks.outbox_gas --out $(BENCH_DIR)/outbox_gas.json
	$(BIN)/python -m benchmarks.batch_circuit --out $(BENCH_DIR)/batch_circuit.json
	$(BIN)/python -m benchmarks.verifier_gas --out $(BENCH_DIR)/verifier_gas.json
	$(BIN)/python -m benchmarks.envelope --out $(BENCH_DIR)/envelope.json
	$(BIN)/python -m benchmarks.priority_gas --out $(BENCH_DIR)/priority_gas.json
	$(BIN)/python -m benchmarks.execute_gas --out $(BENCH_DIR)/execute_gas.json
	$(BIN)/python -m benchmarks.forced --out $(BENCH_DIR)/forced.json
	$(BIN)/python -m benchmarks.swap_gas --out $(BENCH_DIR)/swap_gas.json

# End-to-end throughput and latency through the real daemons, beside the node's raw capacity.
bench-relay: setup
	$(BIN)/python -m benchmarks.relay --out $(BENCH_DIR)/relay.json

# Atomic swaps through the real daemons: swaps per second, initiate -> redeemed latency, gas per phase.
bench-swaps: setup
	$(BIN)/python -m benchmarks.swaps --out $(BENCH_DIR)/swaps.json

# Our Groth16 prover beside snarkjs on the same keys and witnesses (several minutes on 2 cores).
bench-prover: setup
	$(BIN)/python -m benchmarks.prover --out $(BENCH_DIR)/prover.json

contracts: setup
	$(BIN)/xrelay contracts build

clean:
	rm -rf $(VENV) bridge_contracts/node_modules .xrelay .mypy_cache .ruff_cache .pytest_cache $(BENCH_DIR)
