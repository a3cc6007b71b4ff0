#!/usr/bin/env bash
# The privilege oracle (dataplane/tests/privilege_oracle.rs) at length: more generated
# policies and statements than ci/test.sh runs. Not part of ci/test.sh.
# Usage: ci/oracle.sh [SEEDS] [STATEMENTS_PER_ROLE] [CORPUS_PER_ROLE]   (default 20 × 2000, 600)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
install_packages postgresql libclang-dev pkg-config openssl
pg_start oracle 54349
trap pg_stop EXIT
PGATE_ORACLE_SEEDS=${1:-20} PGATE_ORACLE_STATEMENTS=${2:-2000} PGATE_ORACLE_CORPUS=${3:-600} \
    cargo test --locked -p pgate --test privilege_oracle -- --nocapture
