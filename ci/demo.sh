#!/usr/bin/env bash
# The main job. Until the proxy lands, it builds and tests the example policies and shows
# what pgate would decide for a few statements, per role, with the deciding rule.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

log "building pgate-compile"
cargo build --release --locked -p pgate-compile -p pgate 2>&1 | tail -n 2
PGC="$ROOT/target/release/pgate-compile"

log "pgate-compile check policies/"
"$PGC" check policies/

log "pgate-compile build policies/ -o target/policy.pgt"
"$PGC" build policies/ -o target/policy.pgt
"$ROOT/target/release/pgate" check-table target/policy.pgt

log "pgate-compile test policies/"
"$PGC" test policies/

explain() {
    local role=$1 sql=$2
    printf '\n\033[1m%s\033[0m  %s\n' "$role" "$sql"
    "$PGC" explain --policy target/policy.pgt --role "$role" --sql "$sql" || true
}

log "what pgate decides"
explain analyst  "SELECT id, total, created_at FROM orders WHERE total > 100"
explain analyst  "SELECT name, ssn FROM customers"
explain analyst  "SELECT id FROM customers WHERE ssn LIKE '123%'"
explain ai-agent "COPY (SELECT * FROM customers) TO STDOUT"
explain ai-agent "SELECT 1; DROP TABLE orders"
explain support  "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone"
explain etl      "SELECT pg_catalog.pg_read_file('/etc/passwd')"
explain admin    "ALTER TABLE orders ADD COLUMN note text"

log "done — edit policies/*.kdl and run ci/demo.sh again"
