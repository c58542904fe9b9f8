# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Real servers and tools the tests start or call (Debian packages; installed when missing).
TEST_PACKAGES := redis-server postgresql haproxy prometheus kubectl chromium

.PHONY: run fleet test install system-packages lint typecheck pytest fuzz proto bench breakdown clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-packages:
	scripts/debian_packages.sh $(TEST_PACKAGES)

## Start the default stack in the foreground (Ctrl-C stops everything). DRIFT=none: services
## that answer as the mainframe does, so the default canary climbs (docs/canary.md).
DRIFT ?=
run: $(STAMP)
	$(BIN)/cpr-gateway up --routing routing.yaml --var var $(if $(DRIFT),--drift $(DRIFT))

## The fleet on this machine: Redis, PostgreSQL, the emulator, two services replicas, two
## gateway replicas behind HAProxy on :5000 (docs/deploy.md). Ctrl-C stops everything.
fleet: $(STAMP)
	scripts/debian_packages.sh redis-server postgresql haproxy
	$(BIN)/cpr-gateway up --replicas 2 --routing routing.yaml --var var $(if $(DRIFT),--drift $(DRIFT))

## Every check: lint, format, types, tests.
test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-packages
	$(BIN)/pytest

## Coverage-guided fuzzing (atheris/libFuzzer) of the framer, the answer decoder, the routing.yaml
## loader and the PROXY header reader: 10^6 executions together, a hang or crash fails
## (docs/fuzzing.md; make test runs a few thousand per target). Then the codec's property test
## at length (make test runs 2,000 examples).
fuzz: $(STAMP)
	$(BIN)/python -m cpr_devtools.fuzz --var var
	CPR_CODEC_EXAMPLES=50000 $(BIN)/pytest -q -p no:cacheprovider tests/unit/test_codec_total.py

## Measure the gateway against direct and HAProxy (a few minutes; docs/benchmarks.md).
bench: $(STAMP)
	command -v haproxy >/dev/null || (apt-get update && apt-get install -y haproxy)
	$(BIN)/cpr-gateway bench --var var

## Where a lookup's CPU goes in the gateway, stage by stage, beside HAProxy (~1.5 minutes;
## docs/benchmarks.md, "A lookup's cost, stage by stage").
breakdown: $(STAMP)
	scripts/debian_packages.sh haproxy linux-perf
	$(BIN)/python -m cpr_bench.breakdown --var var

## Regenerate src/gateway/cprv1/pb from proto/ (the test suite fails when it is stale).
proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
