#!/usr/bin/env bash
# Every test: formatting, clippy, unit/integration/property tests (against a throwaway
# PostgreSQL), and the example policies checked, built and tested.
# Works on a fresh Debian machine with only the Rust toolchain: it installs the rest.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# libclang-dev: the pg_query dev-dependency (PostgreSQL's own parser, for differential
# tests) generates bindings with bindgen. postgresql: integration tests. redis-server: the
# store replicas share (tests/shared_store.rs starts and restarts its own).
install_packages postgresql libclang-dev pkg-config openssl redis-server

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The driver matrix's client libraries (dataplane/tests/drivers.rs).
install_drivers

# log_statement=all: the audit test compares PostgreSQL's log with pgate's audit log.
PG_LOG_ALL=1 pg_start test 54329
trap pg_stop EXIT

# The data plane's live suites run on both drivers: io_uring first (the whole
# workspace), then epoll. Where this machine cannot run io_uring (a seccomp profile, the
# io_uring_disabled sysctl), `auto` falls back and says so here.
cargo build --locked -p pgate
DRIVER=$("$ROOT/target/debug/pgate" check-runtime) || true
if [ "$DRIVER" = io_uring ]; then
    log "cargo test (io_uring driver)"
    PGATE_RUNTIME=uring cargo test --workspace --locked
else
    log "WARNING: io_uring is unavailable here; the io_uring driver is not tested"
    cargo test --workspace --locked
fi
log "live suites again (epoll driver)"
PGATE_RUNTIME=epoll cargo test --locked -p pgate --test integration --test drivers \
    --test masks --test search_path --test pg_oracle --test privilege_oracle --test shared_store

log "example policies: check, build, test"
PGC="$ROOT/target/debug/pgate-compile"
"$PGC" check policies/
"$PGC" build policies/ -o target/policies.pgt
"$PGC" build policies/ -o target/policies-again.pgt
cmp target/policies.pgt target/policies-again.pgt
"$PGC" test policies/
"$PGC" explain --policy policies/ --role analyst --sql "select id, total_cents from orders"

log "adversarial suite"
"$PGC" test tests/adversarial/

log "all tests passed"
