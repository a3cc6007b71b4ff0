#!/usr/bin/env bash
# The main job: a throwaway PostgreSQL with demo data, the example policies checked, built
# and tested, signing keys and tokens for two roles, pgate in front, and psql showing what
# an analyst may do, what it may not (with the rule that says so), and what an AI agent
# may not do. Leaves pgate running for you to try when run from a terminal.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

install_packages postgresql openssl

log "building pgate and pgate-compile (release)"
cargo build --release --locked -p pgate -p pgate-compile 2>&1 | tail -n 1
PGC="$ROOT/target/release/pgate-compile"
PGATE="$ROOT/target/release/pgate"
DEMO="$ROOT/target/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"

log "policies: check, test, build"
"$PGC" check policies/ 2>&1 | tail -n 1
"$PGC" test policies/ | tail -n 1
"$PGC" build policies/ -o "$DEMO/policy.pgt"
"$PGATE" check-table "$DEMO/policy.pgt"

pg_start demo 54330
PGATE_PID=""
cleanup() {
    [ -n "$PGATE_PID" ] && kill "$PGATE_PID" 2>/dev/null
    pg_stop
}
trap cleanup EXIT
psql_admin -c "CREATE DATABASE app" >/dev/null
PGOPTIONS="-c client_min_messages=warning" PGDATABASE_ADMIN=app psql_admin -f ci/demo-schema.sql >/dev/null
log "demo database \`app\` loaded ($(PGDATABASE_ADMIN=app psql_admin -tAc 'select count(*) from customers') customers)"

log "keys, TLS certificate, configuration"
"$PGATE" token --init-keys "$DEMO/keys"
make_cert "$DEMO" server
echo "$PG_SUPERUSER_PASSWORD" > "$DEMO/db.pass"
chmod 600 "$DEMO/db.pass"
# The key of `hash` masks: the data plane's secret, never in the policy.
openssl rand -hex 32 > "$DEMO/mask.key"
chmod 600 "$DEMO/mask.key"
PORT=${PGATE_DEMO_PORT:-6432}
cat > "$DEMO/pgate.kdl" <<KDL
listen "127.0.0.1:$PORT"
workers 2
tls cert="server.crt" key="server.key"
upstream host="127.0.0.1" port=$PG_PORT database="app" user="postgres" password-file="db.pass"
identity issuer="https://idp.demo.pgate" audience="pgate" jwks="keys/jwks.json" leeway="30s"
policy "policy.pgt"
audit path="audit.jsonl" on-failure="block"
masks hash-key-file="mask.key"
KDL
"$PGATE" check-config "$DEMO/pgate.kdl"

log "starting pgate on 127.0.0.1:$PORT"
"$PGATE" run --config "$DEMO/pgate.kdl" 2>"$DEMO/pgate.log" &
PGATE_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
done

mint() {
    "$PGATE" token --key "$DEMO/keys/signing-key.pem" --iss https://idp.demo.pgate --aud pgate --ttl 1h "$@"
}
ANALYST_TOKEN=$(mint --sub alice@example.com --claim groups=data-analysts)
SUPPORT_TOKEN=$(mint --sub sam@example.com --claim groups=support)
AGENT_TOKEN=$(mint --sub support-copilot --claim client_id=support-copilot --act agent-run-42 --act bob@example.com)

run_as() {
    local user=$1 token=$2 sql=$3
    printf '\n\033[1m%s$\033[0m %s\n' "$user" "$sql"
    PGPASSWORD="$token" PGSSLMODE=require psql -X -h 127.0.0.1 -p "$PORT" -U "$user" -d app -c "$sql" 2>&1 | sed 's/^/    /' || true
}

log "an analyst (token: groups=data-analysts)"
run_as analyst "$ANALYST_TOKEN" "SELECT id, status, total_cents FROM orders ORDER BY id LIMIT 3"
run_as analyst "$ANALYST_TOKEN" "SELECT country, count(*) FROM customers GROUP BY country ORDER BY country"
run_as analyst "$ANALYST_TOKEN" "SELECT name, ssn FROM customers LIMIT 3"
run_as analyst "$ANALYST_TOKEN" "SELECT count(*) FROM customers WHERE ssn LIKE '1%'"
# The e-mail is masked with a keyed hash: equal addresses give equal hashes (exports still
# join), and the database never computes with the real value for this role.
run_as analyst "$ANALYST_TOKEN" "SELECT id, email, country FROM customers ORDER BY id LIMIT 3"
run_as analyst "$ANALYST_TOKEN" "SELECT id FROM customers WHERE email LIKE 'ada%'"
run_as analyst "$ANALYST_TOKEN" "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone"
# psql's \dt reads the catalog metadata (tag pg-metadata); password hashes stay inside.
run_as analyst "$ANALYST_TOKEN" "\dt"
run_as analyst "$ANALYST_TOKEN" "SELECT rolname, rolpassword FROM pg_authid"

log "support (token: groups=support): the address is redacted"
run_as support "$SUPPORT_TOKEN" "SELECT id, name, address FROM customers ORDER BY id LIMIT 2"

log "the support copilot acting for sam@example.com (token: sub=sam, groups=support, act=support-copilot)"
# The same person's role, narrowed for delegated sessions (roles/support.kdl, `delegated`).
COPILOT_TOKEN=$(mint --sub sam@example.com --claim groups=support --act support-copilot)
run_as support "$SUPPORT_TOKEN" "COPY (SELECT order_id, quantity FROM order_items ORDER BY id LIMIT 2) TO STDOUT"
run_as support "$COPILOT_TOKEN" "COPY (SELECT order_id, quantity FROM order_items ORDER BY id LIMIT 2) TO STDOUT"
run_as support "$COPILOT_TOKEN" "UPDATE orders SET status = 'refunded' WHERE id = 1004"
run_as support "$COPILOT_TOKEN" "SELECT card_brand, status FROM payments WHERE order_id = 1001"
run_as support "$COPILOT_TOKEN" "SELECT i.id FROM order_items i CROSS JOIN generate_series(1, 100)"
# A tool the copilot runs (two hops from sam) sees no personal data; three hops: refused.
TOOL_TOKEN=$(mint --sub sam@example.com --claim groups=support --act lookup-tool --act support-copilot)
run_as support "$TOOL_TOKEN" "SELECT name, email FROM customers WHERE id = 1"
run_as support "$(mint --sub sam@example.com --claim groups=support --act a --act b --act c)" "SELECT 1"
sleep 0.3
grep '"variant":"support \[delegated' "$DEMO/audit.jsonl" | tail -n 1 | cut -c1-300 | sed 's/^/    audit: /'

log "a throttled export: the analyst's rate (4 MiB/s after a 32 MiB burst, per identity)"
ITEMS=$(PGDATABASE_ADMIN=app psql_admin -tAc 'select count(*) from order_items')
REPEAT=$((85000 / ITEMS))
EXPORT_SQL="COPY (SELECT i.id, repeat('x', 500) FROM order_items i CROSS JOIN generate_series(1, $REPEAT)) TO STDOUT"
printf '\n\033[1manalyst$\033[0m %s\n' "$EXPORT_SQL"
START_NS=$(date +%s%N)
BYTES=$(PGPASSWORD="$ANALYST_TOKEN" PGSSLMODE=require psql -X -h 127.0.0.1 -p "$PORT" -U analyst -d app -c "$EXPORT_SQL" | wc -c)
END_NS=$(date +%s%N)
sleep 0.3
THROTTLED=$(grep '"event":"statement"' "$DEMO/audit.jsonl" | grep -o '"throttled_ms":[0-9]*' | tail -n 1)
awk -v b="$BYTES" -v ns=$((END_NS - START_NS)) -v t="$THROTTLED" 'BEGIN {
    s = ns / 1e9; mib = b / 1048576;
    printf "    %.1f MiB in %.2f s: %.1f MiB/s overall, %.1f MiB/s after the 32 MiB burst (%s on its audit line)\n",
        mib, s, mib / s, (mib - 32) / s, t }'

log "an AI agent acting for bob@example.com (token: client_id=support-copilot, act chain)"
run_as ai-agent "$AGENT_TOKEN" "SELECT id, status FROM orders WHERE id = 1001"
run_as ai-agent "$AGENT_TOKEN" "COPY (SELECT * FROM customers) TO STDOUT"
run_as ai-agent "$AGENT_TOKEN" "SELECT 1; DROP TABLE orders"
run_as ai-agent "$AGENT_TOKEN" "SELECT pg_read_file('/etc/passwd')"
# One big SELECT is cut at the agent's cap (limit rows=200): 54000 naming the rule.
run_as ai-agent "$AGENT_TOKEN" "SELECT o.id, o.status FROM orders o CROSS JOIN generate_series(1, 3000)"

log "the agent spawns a sub-agent that inherits its token (PGPASSWORD): one session at a time"
printf '\n\033[1mai-agent$\033[0m (its own session stays open for 2 s)\n'
PGPASSWORD="$AGENT_TOKEN" PGSSLMODE=require psql -X -q -h 127.0.0.1 -p "$PORT" -U ai-agent -d app \
    -c "SELECT id, status FROM orders WHERE id = 1001" -c '\! sleep 2' 2>&1 | sed 's/^/    /' &
PARENT=$!
sleep 0.7
run_as ai-agent "$AGENT_TOKEN" "SELECT count(*) FROM orders"
wait "$PARENT" || true
grep '"event":"token-reused"' "$DEMO/audit.jsonl" | tail -n 1 | cut -c1-300 | sed 's/^/    audit: /'

log "a forged token"
run_as analyst "not-a-real-token" "SELECT 1"

log "the audit log (last 3 lines of $DEMO/audit.jsonl)"
sleep 0.3
tail -n 3 "$DEMO/audit.jsonl" | cut -c1-300
log "the audit log's hash chain"
"$PGATE" audit verify "$DEMO/audit.jsonl" | sed 's/^/    /' || true

cat <<MSG

pgate is running on 127.0.0.1:$PORT in front of PostgreSQL 127.0.0.1:$PG_PORT (database app).
Connect yourself:
    export PGHOST=127.0.0.1 PGPORT=$PORT PGDATABASE=app PGUSER=analyst PGSSLMODE=require
    export PGPASSWORD="\$($PGATE token --key $DEMO/keys/signing-key.pem --iss https://idp.demo.pgate --aud pgate --ttl 1h --sub you@example.com --claim groups=data-analysts)"
    psql
Audit log: $DEMO/audit.jsonl
MSG
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    read -r -p "Press Enter to stop pgate and PostgreSQL. " _
fi
