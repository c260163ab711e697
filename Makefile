# cupid-sync. First commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := $(CURDIR)/.local/venv
PY_TOOLS := moto[server]==5.2.5 cargo-lambda==1.9.2 cfn-lint==1.58.0 aws-sam-translator==1.115.0
ADMIN_TOKEN ?= local-admin-token
API ?= http://localhost:8080
export ADMIN_TOKEN

.PHONY: run test tools build lint deny test-coverage sam-build deploy api-fuzz bench bench-reads sim sim-bites ceiling sync-now sync-status sync-health sync-start sync-start-24h sync-stop sync-logs sync-settings track logs clean

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	touch $@

tools: $(VENV)/.installed

build:
	cargo build --workspace --all-targets

run: tools
	tests/stack.sh run

lint: tools deny
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(VENV)/bin/python infra/check_template.py infra/template.yaml

# Cargo tools, built from crates.io into .local/tools (never the machine's ~/.cargo/bin).
TOOLS := $(CURDIR)/.local/tools
CARGO_DENY := $(TOOLS)/bin/cargo-deny
LLVM_COV := $(TOOLS)/bin/cargo-llvm-cov
$(CARGO_DENY):
	@echo "building cargo-deny into .local/tools (once; ~4 min on 2 cores)"
	cargo install --locked --quiet cargo-deny@0.20.2 --root $(TOOLS)
$(LLVM_COV):
	@echo "building cargo-llvm-cov into .local/tools (once; ~2 min on 2 cores)"
	cargo install --locked --quiet cargo-llvm-cov@0.9.1 --root $(TOOLS)

# Licenses, duplicate crates, banned crates (OpenSSL) and sources: deny.toml.
deny: $(CARGO_DENY)
	$(CARGO_DENY) --log-level warn check licenses bans sources

# Line coverage of the workspace: every test of `cargo test` (the moto-backed ones included)
# built with LLVM's instrumentation. Prints the table and the total; HTML in
# .local/coverage/html/index.html. Needs rustup's llvm-tools component (installed here).
test-coverage: tools $(LLVM_COV)
	rustup component add llvm-tools
	tests/stack.sh test $(LLVM_COV) llvm-cov --workspace --all-targets --no-report
	$(LLVM_COV) llvm-cov report --html --output-dir .local/coverage
	$(LLVM_COV) llvm-cov report --summary-only > .local/coverage/summary.txt
	@awk '$$1 == "TOTAL" { printf "line coverage: %s (%d of %d lines); per file: .local/coverage/summary.txt, HTML: .local/coverage/html/index.html\n", $$10, $$8 - $$9, $$8 }' .local/coverage/summary.txt

# `sam build`: every function cross-built for arm64 by `cargo lambda build --release` (zig
# links; no Docker, no AWS account) into infra/.aws-sam/build. `make deploy` then runs
# `sam deploy --guided` (an AWS account and credentials). Settings: infra/samconfig.toml.
SAM_VENV := $(CURDIR)/.local/sam-venv
SAM := SAM_CLI_TELEMETRY=0 PATH="$(VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam
$(SAM_VENV)/.installed:
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==1.170.0
	touch $@
sam-build: tools $(SAM_VENV)/.installed
	rustup target add aarch64-unknown-linux-gnu
	cd infra && $(SAM) build
	@for f in infra/.aws-sam/build/*/bootstrap; do printf '%-28s %s, %s\n' "$$(basename $$(dirname $$f))" "$$(du -h $$f | cut -f1)" "$$(readelf -h $$f | awk -F: '/Machine/ {gsub(/^ +/, "", $$2); print $$2}')"; done
	@echo "template with the built code's paths: infra/.aws-sam/build/template.yaml; next: make deploy"
# --guided saves its answers (region, parameters) into .local/samconfig.toml, a copy of
# infra/samconfig.toml made on the first deploy, so an account's settings are never committed.
deploy: sam-build
	test -f .local/samconfig.toml || cp infra/samconfig.toml .local/samconfig.toml
	cd infra && $(SAM) deploy --guided --config-file $(CURDIR)/.local/samconfig.toml

test: tools
	tests/stack.sh test cargo test --workspace --all-targets --no-fail-fast
	SIM_PORT=19100 WATCH_PORT=18080 tests/stack.sh e2e
	FUZZ_EXAMPLES=5 SIM_PORT=19200 WATCH_PORT=18180 tests/stack.sh fuzz
	$(MAKE) lint

# Benchmarks (not part of `make test`): release build, then every scenario against moto and
# the simulator; BENCH_ARGS=--full adds N=10,000 at 10/s (~17 min) and N=100,000 through
# continuation. Results: the printed table (and BENCH_OUT, default .local/bench.md).
BENCH_ARGS ?=
BENCH_OUT ?= $(CURDIR)/.local/bench.md
bench: tools
	cargo build --release --workspace --bins
	tests/stack.sh test target/release/bench $(BENCH_ARGS) --markdown $(BENCH_OUT)
	target/release/ceiling 20000 small
	target/release/ceiling 5000 recorded

# Admin reads at scale through watch (BENCH_READS_N=100,100000,1000000; 5,000 runs in the log):
# p50/p95 of status, health and the logs list, and the read units each costs.
BENCH_READS_N ?= 100,100000
bench-reads: tools
	cargo build --workspace --bins
	BENCH_READS_N=$(BENCH_READS_N) SIM_PORT=19300 WATCH_PORT=18380 BENCH_OUT=$(CURDIR)/.local/bench-reads.md tests/stack.sh reads

# The deterministic simulation (also in `make test` with 10,000 seeds): SEEDS=N for a long soak,
# SIM_SEED=S to replay one seed verbosely.
SEEDS ?= 100000
sim:
	cargo build -p sim --bin sim
	SEEDS=$(SEEDS) target/debug/sim

# The engine's own ceiling (no network: in-memory store, upstream in process, rate limit off).
CEILING_N ?= 20000
ceiling:
	cargo build --release -p sim --bin ceiling
	target/release/ceiling $(CEILING_N) small
	target/release/ceiling 5000 recorded

# Puts each known defect back (tests/sim/planted/*.patch), counts the seeds until the simulation
# catches it, and takes it out again.
sim-bites:
	tests/sim/bites.sh

# schemathesis against the OpenAPI document on a stack of its own: no 5xx, every answer
# conforms to its documented schema, status code and content type, and a stateful phase follows
# the document's links (trigger -> run log, settings -> status, ...). FUZZ_EXAMPLES per
# operation (25 operations; 150 -> ~3,700 requests). `make test` runs it with 5.
api-fuzz: tools
	SIM_PORT=19200 WATCH_PORT=18180 tests/stack.sh fuzz

# The operator CLI (cli/, `cupid-sync --help`) behind the seed's targets; API and ADMIN_TOKEN
# as above (a deployment: `make sync-status API=https://… ADMIN_TOKEN=…`).
CLI := target/debug/cupid-sync
CLI_RUN = @cargo build --quiet -p cupid-sync-cli && $(CLI) --api $(API)

# `make sync-now` (all), `IDS=1641879,1270324`, `DRY_RUN=1`, `FORCE=1` (accept a change the
# circuit breaker halted): follows the run to its summary.
sync-now:
	$(CLI_RUN) sync --follow $(if $(IDS),--ids $(IDS)) $(if $(DRY_RUN),--dry-run) $(if $(FORCE),--force)

# Bulk tracking from a file of ids (one per line; `#` comments): `make track FILE=ids.txt`.
track:
	@test -n "$(FILE)" || { echo "usage: make track FILE=ids.txt" >&2; exit 2; }
	$(CLI_RUN) track --file $(FILE)

sync-status:
	$(CLI_RUN) status

sync-health:
	$(CLI_RUN) health

sync-start:
	$(CLI_RUN) start --interval 12h

sync-start-24h:
	$(CLI_RUN) start --interval 24h

sync-stop:
	$(CLI_RUN) stop

sync-logs:
	$(CLI_RUN) logs --limit 10

sync-settings:
	$(CLI_RUN) settings

logs:
	@tail -n 100 -F .local/run/*.log

clean:
	rm -rf .local target
