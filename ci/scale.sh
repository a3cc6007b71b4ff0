#!/usr/bin/env bash
# The table-scale benchmark: generated policies of growing size (the shape of
# compiler/benches/scale/gen.rs: 30 columns per table, 10 % of tables tagged pii, every role
# with five schema-glob allows, a column-restricted allow by tag, a named-table allow, a tag
# deny, transaction/session, function, mask, limit and rate rules, one invariant), each
# built, checked, loaded and diffed against a variant with one more rule. Prints the growth
# table (wall time and peak memory from /usr/bin/time, table size). A benchmark, not a test:
# nothing here fails on a number.
#
#   SCALE_SIZES="50x2000 200x20000 50x20000 1000x100000"   ROLESxTABLES, in order
#   SCALE_DIR=/tmp/pgate-scale                              where policies and tables go
#   SCALE_DB=1                                              also a real database (below)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
SIZES=${SCALE_SIZES:-50x2000 50x20000 200x20000 1000x100000}
DIR=${SCALE_DIR:-/tmp/pgate-scale}
command -v /usr/bin/time >/dev/null || install_packages time
log "building pgate-compile and the generator (release)"
cargo build --release -q -p pgate-compile --bin pgate-compile --example scale_policy
cargo build --release -q -p pgate-core --example load_table
BIN=target/release
mkdir -p "$DIR"

measure() { # CMD… → "seconds KiB" (wall time, peak resident memory)
    /usr/bin/time -o "$DIR/time.out" -f '%e %M' "$@" >/dev/null 2>&1 || true
    tail -1 "$DIR/time.out"
}

printf '| roles × tables | classes | build s | build peak MiB | table MiB | check s | load + validate ms | diff s | diff peak MiB |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for size in $SIZES; do
    roles=${size%x*}
    tables=${size#*x}
    src="$DIR/$size"
    rm -rf "$src" "$src-b"
    "$BIN/examples/scale_policy" "$roles" "$tables" "$src"
    # The variant: one more rule in one role.
    cp -r "$src" "$src-b"
    sed -i '0,/^role "role1" {$/s//role "role1" {\n    allow "update" table="s0.*"/' "$src-b/roles.kdl"
    read -r build_s build_kb < <(measure "$BIN/pgate-compile" build "$src" -o "$src.pgt")
    "$BIN/pgate-compile" build "$src-b" -o "$src-b.pgt" >/dev/null 2>&1
    read -r check_s _ < <(measure "$BIN/pgate-compile" check "$src")
    read -r diff_s diff_kb < <(measure "$BIN/pgate-compile" diff "$src.pgt" "$src-b.pgt")
    load=$("$BIN/examples/load_table" "$src.pgt")
    load_ms=$(echo "$load" | sed -E 's/^load \+ validate: ([0-9.]+) ms.*/\1/')
    classes=$(echo "$load" | sed -E 's/.* in ([0-9]+) classes.*/\1/')
    bytes=$(stat -c %s "$src.pgt")
    awk -v r="$roles" -v t="$tables" -v c="$classes" -v bs="$build_s" -v bk="$build_kb" \
        -v by="$bytes" -v cs="$check_s" -v lm="$load_ms" -v ds="$diff_s" -v dk="$diff_kb" \
        'BEGIN { printf "| %s × %s | %s | %s | %.0f | %.1f | %s | %s | %s | %.0f |\n",
                 r, t, c, bs, bk / 1024, by / 1048576, cs, lm, ds, dk / 1024 }' 
done

# SCALE_DB=1: the same estate as a real database (SCALE_DB_TABLES tables, default 100,000,
# in schemas of 100, 30 columns of mixed types, tags in comments). Measures `schema --from`
# (time, memory, files), builds the policy from what it wrote plus the generated roles,
# starts pgate in front and reports the masks' catalog lookup at start and at a reload,
# then reads a masked column through psql.
[ "${SCALE_DB:-0}" = 1 ] || exit 0
DB_TABLES=${SCALE_DB_TABLES:-100000}
DB_ROLES=${SCALE_DB_ROLES:-1000}
log "a database of $DB_TABLES tables (PostgreSQL on 127.0.0.1:54340)"
install_packages postgresql
cargo build --release -q -p pgate
pg_start scale 54340 >/dev/null
trap pg_stop EXIT
psql_admin -c "CREATE DATABASE estate" >/dev/null
{ cat <<'SQL'
CREATE FUNCTION pg_temp.mk(sc int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE n int; cols text;
BEGIN
  EXECUTE format('CREATE SCHEMA s%s', sc);
  FOR t IN 0..99 LOOP
    n := sc * 100 + t;
    cols := 'c0 bigint PRIMARY KEY, c1 text, c2 int4, c3 text, c4 text';
    FOR i IN 5..29 LOOP
      cols := cols || format(', c%s %s', i, (ARRAY['text','int4','numeric','timestamptz','bool'])[1 + i % 5]);
    END LOOP;
    EXECUTE format('CREATE TABLE s%s.t%s (%s)', sc, t, cols);
    EXECUTE format('COMMENT ON TABLE s%s.t%s IS %L', sc, t,
      'pgate-tags: group' || (n % 10) || CASE WHEN n % 10 = 0 THEN ', pii' ELSE '' END);
    EXECUTE format('COMMENT ON COLUMN s%s.t%s.c3 IS %L', sc, t, 'pgate-tags: pii');
    IF n % 10 = 0 THEN
      EXECUTE format('COMMENT ON COLUMN s%s.t%s.c4 IS %L', sc, t, 'pgate-tags: pii, secret');
    END IF;
  END LOOP;
END $$;
SQL
  for sc in $(seq 0 $(( DB_TABLES / 100 - 1 ))); do echo "SELECT pg_temp.mk($sc);"; done
} | PGDATABASE_ADMIN=estate psql_admin -o /dev/null
url="host=$PG_SOCKET_DIR port=$PG_PORT user=postgres dbname=estate"
db="$DIR/db"
rm -rf "$db" && mkdir -p "$db/policy"
read -r schema_s schema_kb < <(measure "$BIN/pgate-compile" schema --from "$url" --output-dir "$db/policy")
"$BIN/pgate-compile" schema --from "$url" --output-dir "$db/again" 2>/dev/null
diff -r -q "$db/policy" "$db/again" >/dev/null && same=yes || same=NO
# The generated roles over the database's catalog (the generator's functions kept).
"$BIN/examples/scale_policy" "$DB_ROLES" "$DB_TABLES" "$db/gen"
cp "$db/gen/roles.kdl" "$db/policy/"
grep '^function' "$db/gen/catalog-000.kdl" > "$db/policy/functions.kdl"
read -r dbbuild_s _ < <(measure "$BIN/pgate-compile" build "$db/policy" -o "$db/policy.pgt")
cp -r "$db/policy" "$db/policy-b"
sed -i '0,/^role "role1" {$/s//role "role1" {\n    allow "update" table="s0.*"/' "$db/policy-b/roles.kdl"
"$BIN/pgate-compile" build "$db/policy-b" -o "$db/policy-b.pgt" >/dev/null 2>&1
run="$db/run"
mkdir -p "$run"
"$BIN/pgate" token --init-keys "$run/keys" >/dev/null
make_cert "$run" server
echo "$PG_SUPERUSER_PASSWORD" > "$run/db.pass"
openssl rand -hex 32 > "$run/mask.key"
chmod 600 "$run/db.pass" "$run/mask.key"
cp "$db/policy.pgt" "$run/policy.pgt"
cat > "$run/pgate.kdl" <<KDL
listen "127.0.0.1:6499"
workers 2
tls cert="server.crt" key="server.key"
upstream host="127.0.0.1" port=$PG_PORT database="estate" user="postgres" password-file="db.pass"
identity issuer="https://idp.scale" audience="pgate" jwks="keys/jwks.json" leeway="30s"
policy "policy.pgt"
audit path="audit.jsonl" on-failure="block"
masks hash-key-file="mask.key"
KDL
"$BIN/pgate" run --config "$run/pgate.kdl" 2>"$run/pgate.log" &
PGATE_PID=$!
trap 'kill $PGATE_PID 2>/dev/null; pg_stop' EXIT
for _ in $(seq 1 300); do grep -q listening "$run/pgate.log" && break; sleep 0.1; done
cp "$db/policy-b.pgt" "$run/policy.pgt.new" && mv "$run/policy.pgt.new" "$run/policy.pgt"
for _ in $(seq 1 300); do grep -q "policy reloaded" "$run/pgate.log" && break; sleep 0.1; done
token=$("$BIN/pgate" token --key "$run/keys/signing-key.pem" --iss https://idp.scale --aud pgate --ttl 10m --sub scale@example.com --claim groups=team-0)
PGPASSWORD=$token PGSSLMODE=require psql -X -q -h 127.0.0.1 -p 6499 -U scale@example.com -d estate \
    -c "INSERT INTO s0.t0 (c0, c3) VALUES (1, 'real value')" >/dev/null
masked=$(PGPASSWORD=$token PGSSLMODE=require psql -X -At -h 127.0.0.1 -p 6499 -U scale@example.com -d estate \
    -c "SELECT c3 FROM s0.t0 WHERE c0 = 1")
lookups=$(grep -o 'looked up in [0-9]* ms' "$run/pgate.log" | grep -o '[0-9]*' | paste -sd/ -)
echo
printf '| database tables | schema --from s | peak MiB | files | deterministic | build s | catalog lookup ms (start/reload) | masked c3 |\n'
printf '|---:|---:|---:|---:|---|---:|---:|---|\n'
printf '| %s | %s | %.0f | %s | %s | %s | %s | %s |\n' "$DB_TABLES" "$schema_s" "$(echo "$schema_kb / 1024" | bc -l)" \
    "$(ls "$db/policy" | grep -c '^catalog-')" "$same" "$dbbuild_s" "$lookups" "$masked"
