#!/usr/bin/env bash
# Latency and throughput of pgate side by side with a direct connection and PgBouncer, in
# one run, written to bench/REPORT.md (and bench/loadtest.json).
#
# Starts a throwaway PostgreSQL (pgbench tables, scale BENCH_SCALE), the bare forwarder
# (pgate-forwarder: an io_uring relay that parses nothing), PgBouncer (Debian's package,
# session mode, SCRAM; without and with client TLS) and pgate: with an allow-all policy
# (audit to /dev/null), and with policies/ plus a `bench` role and the audit log on a real
# file on io_uring and on epoll, each with and without client TLS. Then runs
# pgate-loadtest (every workload, targets interleaved in rounds, proxy CPU per 10,000
# statements), pgbench -S (simple and prepared, 1 and 8 clients; proxy CPU and context
# switches), a system-call count per proxy, the result stream and memory per idle session
# against the same endpoints. Not part of ci/test.sh: it measures, it does not pass or fail.
#
# Bounded: about 16 minutes with the defaults (2 cores, release build included). Knobs (environment):
#   BENCH_DURATION=2       measured seconds per target per round (pgate-loadtest)
#   BENCH_ROUNDS=3         rounds (A B C D A B C D …)
#   BENCH_WARMUP=0.5       warm-up seconds per segment
#   BENCH_CONNS=8          connections for point selects and transactions
#   BENCH_SCALE=1          pgbench scale
#   BENCH_PGBENCH_TIME=5   seconds per pgbench run (0: skip pgbench)
#   BENCH_WORKLOADS=…      comma-separated pgate-loadtest workloads (default: all)
#   BENCH_DIRECT_TLS=1     also measure PostgreSQL directly over TLS (isolates TLS cost)
#   BENCH_STREAM_REPEAT=100  the result-stream section streams scale × 100000 × this many
#                          account rows per query (100: about 1 GB); 0 skips the section
#   BENCH_STREAM_DURATION=12  measured seconds per target per round in that section
#   BENCH_IDLE_SESSIONS=1000  idle sessions per proxy for the memory figure (0: skip)
#   BENCH_PAUSE=0          1: once every target runs, write their ports, pids and the token
#                          to /tmp/pgate-bench-run/targets.env and wait (at most an hour)
#                          until /tmp/pgate-bench-run/resume exists: for profiling by hand
#   BENCH_OUT=bench        where REPORT.md and loadtest.json go
#   BENCH_COMMIT=…         what the report says was measured (default: git HEAD)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DURATION=${BENCH_DURATION:-2}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-0.5}
CONNS=${BENCH_CONNS:-8}
SCALE=${BENCH_SCALE:-1}
PGBENCH_TIME=${BENCH_PGBENCH_TIME:-5}
WORKLOADS=${BENCH_WORKLOADS:-select-simple,select-extended,select-prepared,tx-readonly,stream,storm}
DIRECT_TLS=${BENCH_DIRECT_TLS:-1}
IDLE=${BENCH_IDLE_SESSIONS:-1000}
# PostgreSQL holds a backend per idle session.
export PG_MAX_CONNECTIONS=$((IDLE + 200))
OUT=${BENCH_OUT:-$ROOT/bench}
PG_BENCH_PORT=54340
PGB_PORT=54341
PGATE_ALLOW_PORT=54342
PGATE_POL_PORT=54343
PGATE_EPOLL_PORT=54347
FORWARDER_PORT=54348
PGATE_PLAIN_PORT=54349
PGB_TLS_PORT=54350
PGATE_EPOLL_PLAIN_PORT=54351

install_packages postgresql pgbouncer openssl

log "building pgate, pgate-compile and pgate-loadtest (release)"
cargo build --release --locked -p pgate -p pgate-compile -p pgate-loadtest -p pgate-forwarder 2>&1 | tail -n 1
PGC="$ROOT/target/release/pgate-compile"
PGATE="$ROOT/target/release/pgate"
LOADTEST="$ROOT/target/release/pgate-loadtest"
FORWARDER="$ROOT/target/release/pgate-forwarder"
WORK=/tmp/pgate-bench-run
PGB_DIR=/tmp/pgate-bench-pgbouncer
rm -rf "$WORK" "$PGB_DIR" && mkdir -p "$WORK" "$PGB_DIR" "$OUT"

PIDS=()
PGB_PID=""
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$PGB_PID" ] && kill "$PGB_PID" 2>/dev/null
    pg_stop
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# ------------------------------------------------------------------ PostgreSQL
pg_start bench "$PG_BENCH_PORT"
psql_admin -c "CREATE DATABASE bench" >/dev/null
log "pgbench -i -s $SCALE"
pgbench -i -q -s "$SCALE" -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres bench 2>&1 | tail -n 1
PGDATABASE_ADMIN=bench psql_admin -c "VACUUM ANALYZE" >/dev/null

# ------------------------------------------------------------------ PgBouncer
# Session mode; clients authenticate with SCRAM against the userlist, which holds
# PostgreSQL's own SCRAM secret (from pg_authid) — as a production setup would: with a
# clear-text password there PgBouncer would run PBKDF2 for every client login. It logs in
# to PostgreSQL with the client's proof (SCRAM pass-through).
PG_SCRAM_SECRET=$(psql_admin -tAc "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
cat > "$PGB_DIR/userlist.txt" <<EOF
"postgres" "$PG_SCRAM_SECRET"
EOF
cat > "$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = session
max_client_conn = $((IDLE + 500))
default_pool_size = $((IDLE + 50))
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
chmod 600 "$PGB_DIR/userlist.txt"
# A client and a server socket per session: PgBouncer's descriptors are raised to the hard
# limit (runuser's PAM session starts it at 1024).
pgb_run=()
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$PGB_DIR"
    pgb_run=(runuser -u postgres --)
fi
"${pgb_run[@]}" sh -c 'ulimit -n "$(ulimit -Hn)"; exec pgbouncer -d "$1"' sh "$PGB_DIR/pgbouncer.ini"
wait_port "$PGB_PORT"
PGB_PID=$(cat "$PGB_DIR/pgbouncer.pid")
log "PgBouncer $(pgbouncer --version | head -n 1 | awk '{print $2}') on 127.0.0.1:$PGB_PORT (pid $PGB_PID)"

# ------------------------------------------------------------------ pgate
"$PGATE" token --init-keys "$WORK/keys" >/dev/null
make_cert "$WORK" server
echo "$PG_SUPERUSER_PASSWORD" > "$WORK/db.pass"
chmod 600 "$WORK/db.pass"
openssl rand -hex 32 > "$WORK/mask.key"

PGBENCH_TABLES='table "public.pgbench_accounts" { columns "aid" "bid" "abalance" "filler"; }
table "public.pgbench_branches" { columns "bid" "bbalance" "filler"; }
table "public.pgbench_tellers" { columns "tid" "bid" "tbalance" "filler"; }
table "public.pgbench_history" { columns "tid" "bid" "aid" "delta" "mtime" "filler"; }'

# 1. Allow-all: every class on every table, every function, the system catalogs (pgbench
#    reads pg_catalog at start).
mkdir -p "$WORK/allow"
cat > "$WORK/allow/policy.kdl" <<KDL
$PGBENCH_TABLES
role "bench" {
    member claim="groups" value="bench"
    allow "*" table="*"
    allow "select" table="pg_catalog.*"
    allow-function "*"
}
KDL
# check's warnings are shown only when it fails (the example policies have deliberate ones).
compile_policy() { # DIR OUT
    "$PGC" check "$1" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log"; return 1; }
    "$PGC" build "$1" -o "$2" 2>&1 | tail -n 1
}
compile_policy "$WORK/allow" "$WORK/allow.pgt"

# 2. The example repository, plus the pgbench tables and a read-only `bench` role.
cp -r policies "$WORK/policies"
cat > "$WORK/policies/bench.kdl" <<KDL
$PGBENCH_TABLES
role "bench" {
    member claim="groups" value="bench"
    allow "select" table="public.pgbench_*"
    // What drivers read at connect; policies/invariants.kdl forbids the credentials.
    allow "select" tag="pg-metadata"
    allow "transaction"
    allow-function "pg_catalog.*"
    deny-function tag="server-files"
}
KDL
compile_policy "$WORK/policies" "$WORK/policies.pgt"

pgate_config() { # NAME PORT POLICY AUDIT_PATH
    cat > "$WORK/$1.kdl" <<KDL
listen "127.0.0.1:$2"
workers 2
tls cert="server.crt" key="server.key"
upstream host="127.0.0.1" port=$PG_PORT database="bench" user="postgres" password-file="db.pass"
identity issuer="https://idp.bench.pgate" audience="pgate" jwks="keys/jwks.json" leeway="30s"
policy "$3"
audit path="$4" on-failure="block"
masks hash-key-file="mask.key"
limits max-connections-per-address=$((IDLE + 1000))
KDL
    "$PGATE" check-config "$WORK/$1.kdl" >/dev/null
}
pgate_config pgate-allow "$PGATE_ALLOW_PORT" allow.pgt /dev/null
pgate_config pgate-policies "$PGATE_POL_PORT" policies.pgt "$WORK/audit.jsonl"
"$PGATE" run --config "$WORK/pgate-allow.kdl" 2>"$WORK/pgate-allow.log" &
PGATE_ALLOW_PID=$!
PIDS+=("$PGATE_ALLOW_PID")
"$PGATE" run --config "$WORK/pgate-policies.kdl" 2>"$WORK/pgate-policies.log" &
PGATE_POL_PID=$!
PIDS+=("$PGATE_POL_PID")
# The same as pgate-policies on the epoll driver (the others run `auto`: io_uring here).
pgate_config pgate-epoll "$PGATE_EPOLL_PORT" policies.pgt "$WORK/audit-epoll.jsonl"
"$PGATE" --runtime epoll run --config "$WORK/pgate-epoll.kdl" 2>"$WORK/pgate-epoll.log" &
PGATE_EPOLL_PID=$!
PIDS+=("$PGATE_EPOLL_PID")
wait_port "$PGATE_ALLOW_PORT"
wait_port "$PGATE_POL_PORT"
wait_port "$PGATE_EPOLL_PORT"
log "pgate on 127.0.0.1:$PGATE_ALLOW_PORT (allow-all, pid $PGATE_ALLOW_PID), :$PGATE_POL_PORT (policies/ + audit, pid $PGATE_POL_PID) and :$PGATE_EPOLL_PORT (the same, epoll driver, pid $PGATE_EPOLL_PID)"
log "drivers: $(grep -ho '[0-9]* workers, [a-z_]*' "$WORK"/pgate-allow.log "$WORK"/pgate-policies.log "$WORK"/pgate-epoll.log | tr '\n' ';')"

# Without client TLS (plaintext tokens are accepted from loopback only), for the
# comparison with PgBouncer and the forwarder, which have none.
pgate_config pgate-plain "$PGATE_PLAIN_PORT" policies.pgt "$WORK/audit-plain.jsonl"
echo 'allow-plaintext-loopback #true' >> "$WORK/pgate-plain.kdl"
"$PGATE" run --config "$WORK/pgate-plain.kdl" 2>"$WORK/pgate-plain.log" &
PGATE_PLAIN_PID=$!
PIDS+=("$PGATE_PLAIN_PID")
# The same on the epoll driver.
pgate_config pgate-epoll-plain "$PGATE_EPOLL_PLAIN_PORT" policies.pgt "$WORK/audit-epoll-plain.jsonl"
echo 'allow-plaintext-loopback #true' >> "$WORK/pgate-epoll-plain.kdl"
"$PGATE" --runtime epoll run --config "$WORK/pgate-epoll-plain.kdl" 2>"$WORK/pgate-epoll-plain.log" &
PGATE_EPOLL_PLAIN_PID=$!
PIDS+=("$PGATE_EPOLL_PLAIN_PID")
# The bare forwarder: an io_uring relay that parses nothing (the floor under any proxy).
"$FORWARDER" "127.0.0.1:$FORWARDER_PORT" "127.0.0.1:$PG_PORT" 2 2>"$WORK/forwarder.log" &
FORWARDER_PID=$!
PIDS+=("$FORWARDER_PID")
# PgBouncer with client TLS (the same settings, pgate's certificate).
sed -e "s/^listen_port = .*/listen_port = $PGB_TLS_PORT/" \
    -e "s|^logfile = .*|logfile = $PGB_DIR/pgbouncer-tls.log|" \
    -e "s|^pidfile = .*|pidfile = $PGB_DIR/pgbouncer-tls.pid|" "$PGB_DIR/pgbouncer.ini" > "$PGB_DIR/pgbouncer-tls.ini"
cp "$WORK/server.crt" "$WORK/server.key" "$PGB_DIR/"
{
    echo "client_tls_sslmode = require"
    echo "client_tls_cert_file = $PGB_DIR/server.crt"
    echo "client_tls_key_file = $PGB_DIR/server.key"
} >> "$PGB_DIR/pgbouncer-tls.ini"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$PGB_DIR"; fi
"${pgb_run[@]}" sh -c 'ulimit -n "$(ulimit -Hn)"; exec pgbouncer -d "$1"' sh "$PGB_DIR/pgbouncer-tls.ini"
wait_port "$PGATE_PLAIN_PORT"
wait_port "$PGATE_EPOLL_PLAIN_PORT"
wait_port "$FORWARDER_PORT"
wait_port "$PGB_TLS_PORT"
PGB_TLS_PID=$(cat "$PGB_DIR/pgbouncer-tls.pid")
PIDS+=("$PGB_TLS_PID")
log "pgate without client TLS on :$PGATE_PLAIN_PORT (pid $PGATE_PLAIN_PID; epoll: :$PGATE_EPOLL_PLAIN_PORT, pid $PGATE_EPOLL_PLAIN_PID), the bare forwarder on :$FORWARDER_PORT (pid $FORWARDER_PID), PgBouncer with client TLS on :$PGB_TLS_PORT (pid $PGB_TLS_PID)"

TOKEN=$("$PGATE" token --key "$WORK/keys/signing-key.pem" --iss https://idp.bench.pgate --aud pgate \
    --ttl 2h --sub bench@example.com --claim groups=bench)

if [ "${BENCH_PAUSE:-0}" = 1 ]; then
    {
        echo "PG_PORT=$PG_PORT FORWARDER_PORT=$FORWARDER_PORT FORWARDER_PID=$FORWARDER_PID"
        echo "PGB_PORT=$PGB_PORT PGB_PID=$PGB_PID PGB_TLS_PORT=$PGB_TLS_PORT PGB_TLS_PID=$PGB_TLS_PID"
        echo "PGATE_PLAIN_PORT=$PGATE_PLAIN_PORT PGATE_PLAIN_PID=$PGATE_PLAIN_PID"
        echo "PGATE_EPOLL_PLAIN_PORT=$PGATE_EPOLL_PLAIN_PORT PGATE_EPOLL_PLAIN_PID=$PGATE_EPOLL_PLAIN_PID"
        echo "PGATE_POL_PORT=$PGATE_POL_PORT PGATE_POL_PID=$PGATE_POL_PID"
        echo "PGATE_EPOLL_PORT=$PGATE_EPOLL_PORT PGATE_EPOLL_PID=$PGATE_EPOLL_PID"
        echo "PG_PASSWORD='$PG_SUPERUSER_PASSWORD' TOKEN='$TOKEN'"
    } > "$WORK/targets.env"
    log "paused: targets in $WORK/targets.env; touch $WORK/resume to go on"
    for _ in $(seq 1 3600); do [ -e "$WORK/resume" ] && break; sleep 1; done
fi

# ------------------------------------------------------------------ pgate-loadtest
# Passwords and tokens go through the environment, never on the command line.
export PGATE_LOADTEST_PASSWORD_DIRECT="$PG_SUPERUSER_PASSWORD"
export PGATE_LOADTEST_PASSWORD_DIRECT_TLS="$PG_SUPERUSER_PASSWORD"
export PGATE_LOADTEST_PASSWORD_PGBOUNCER="$PG_SUPERUSER_PASSWORD"
export PGATE_LOADTEST_PASSWORD_PGATE_ALLOW="$TOKEN"
export PGATE_LOADTEST_PASSWORD_PGATE_POLICIES="$TOKEN"
export PGATE_LOADTEST_PASSWORD_PGATE_EPOLL="$TOKEN"
export PGATE_LOADTEST_PASSWORD_PGATE_PLAIN="$TOKEN"
export PGATE_LOADTEST_PASSWORD_PGATE_EPOLL_PLAIN="$TOKEN"
export PGATE_LOADTEST_PASSWORD_FORWARDER="$PG_SUPERUSER_PASSWORD"
export PGATE_LOADTEST_PASSWORD_PGBOUNCER_TLS="$PG_SUPERUSER_PASSWORD"
CLK_TCK=$(getconf CLK_TCK)
TARGETS=(--target "direct=postgres://postgres@127.0.0.1:$PG_PORT/bench?sslmode=disable")
if [ "$DIRECT_TLS" = 1 ]; then
    TARGETS+=(--target "direct-tls=postgres://postgres@127.0.0.1:$PG_PORT/bench?sslrootcert=$PGATE_TEST_PG_CA")
fi
TARGETS+=(
    --target "forwarder=postgres://postgres@127.0.0.1:$FORWARDER_PORT/bench?sslmode=disable"
    --target "pgbouncer=postgres://postgres@127.0.0.1:$PGB_PORT/bench?sslmode=disable"
    --target "pgbouncer-tls=postgres://postgres@127.0.0.1:$PGB_TLS_PORT/bench?sslmode=require"
    --target "pgate-plain=postgres://bench@127.0.0.1:$PGATE_PLAIN_PORT/bench?sslmode=disable"
    --target "pgate-epoll-plain=postgres://bench@127.0.0.1:$PGATE_EPOLL_PLAIN_PORT/bench?sslmode=disable"
    --target "pgate-allow=postgres://bench@127.0.0.1:$PGATE_ALLOW_PORT/bench?sslrootcert=$WORK/ca.crt"
    --target "pgate-policies=postgres://bench@127.0.0.1:$PGATE_POL_PORT/bench?sslrootcert=$WORK/ca.crt"
    --target "pgate-epoll=postgres://bench@127.0.0.1:$PGATE_EPOLL_PORT/bench?sslrootcert=$WORK/ca.crt"
    --proxy-pid "forwarder=$FORWARDER_PID"
    --proxy-pid "pgbouncer=$PGB_PID"
    --proxy-pid "pgbouncer-tls=$PGB_TLS_PID"
    --proxy-pid "pgate-plain=$PGATE_PLAIN_PID"
    --proxy-pid "pgate-epoll-plain=$PGATE_EPOLL_PLAIN_PID"
    --proxy-pid "pgate-allow=$PGATE_ALLOW_PID"
    --proxy-pid "pgate-policies=$PGATE_POL_PID"
    --proxy-pid "pgate-epoll=$PGATE_EPOLL_PID"
)
LT_ARGS=("${TARGETS[@]}" --workload "$WORKLOADS" --connections "$CONNS" --duration "$DURATION"
    --rounds "$ROUNDS" --warmup "$WARMUP" --scale "$SCALE" --stream-rows $((SCALE * 100000))
    --clk-tck "$CLK_TCK")
log "pgate-loadtest (${ROUNDS} rounds × ${DURATION}s per target per workload)"
LT_RC=0
"$LOADTEST" "${LT_ARGS[@]}" --format markdown --json-out "$OUT/loadtest.json" > "$WORK/loadtest.md" || LT_RC=$?
cat "$WORK/loadtest.md"
# Latency distributions as images (matplotlib from PyPI, in a venv of the build tree).
PLOTS=""
if [ -f "$OUT/loadtest.json" ]; then
    VENV="$ROOT/target/bench-venv"
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
        python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib || true
    fi
    PLOTS=$("$VENV/bin/python" ci/plot_latency.py "$OUT/loadtest.json" "$OUT") || PLOTS=""
fi

# ------------------------------------------------------------------ pgbench -S
# stat_ticks PID — utime + stime of a process, in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the command name's closing parenthesis).
stat_ticks() {
    [ -n "$1" ] || { echo 0; return; }
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
# ctx_switches PID — context switches (voluntary and not) of all its threads so far.
ctx_switches() {
    [ -n "$1" ] || { echo 0; return; }
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches:/{s += $2} END{print s + 0}'
}
PGBENCH_ROWS=()
PGBENCH_CMDS=()
run_pgbench() { # NAME PORT USER PASSWORD SSLMODE PROXY_PID MODE CLIENTS
    local name=$1 port=$2 user=$3 pass=$4 sslmode=$5 pid=$6 mode=$7 clients=$8 out t0 t1 c0 c1 tps lat n cpu ctx
    local cmd=(pgbench -n -S -M "$mode" -c "$clients" -j "$clients" -T "$PGBENCH_TIME" -h 127.0.0.1 -p "$port" -U "$user" bench)
    PGBENCH_CMDS+=("PGSSLMODE=$sslmode PGPASSWORD=… ${cmd[*]}")
    t0=$(stat_ticks "$pid")
    c0=$(ctx_switches "$pid")
    out=$(PGSSLMODE=$sslmode PGPASSWORD=$pass "${cmd[@]}" 2>&1) || { echo "$out" | tail -n 3 >&2; PGBENCH_ROWS+=("$name|$mode|$clients|failed|–|–|–|–"); return 0; }
    t1=$(stat_ticks "$pid")
    c1=$(ctx_switches "$pid")
    tps=$(echo "$out" | awk '/^tps = /{printf "%.0f", $3; exit}')
    lat=$(echo "$out" | awk '/^latency average = /{print $4; exit}')
    n=$(echo "$out" | awk '/number of transactions actually processed:/{print $NF; exit}')
    cpu="–"
    ctx="–"
    if [ -n "$pid" ] && [ "${n:-0}" -gt 0 ]; then
        cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN{printf "%.3f", d / hz / n * 10000}')
        ctx=$(awk -v d=$((c1 - c0)) -v n="$n" 'BEGIN{printf "%.2f", d / n}')
    fi
    PGBENCH_ROWS+=("$name|$mode|$clients|$tps|$lat|$n|$cpu|$ctx")
}
# System calls per transaction, in a pass of its own (counting them slows every system
# call of the process, so the CPU figures above are taken without it): perf stat on the
# proxy (all its threads) during pgbench -S -M prepared at 8 clients.
SYSCALL_ROWS=()
count_syscalls() { # NAME PORT USER PASSWORD SSLMODE PROXY_PID
    local name=$1 port=$2 user=$3 pass=$4 sslmode=$5 pid=$6 out n calls perf_pid
    perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$WORK/syscalls-$name.csv" 2>/dev/null &
    perf_pid=$!
    sleep 0.3
    out=$(PGSSLMODE=$sslmode PGPASSWORD=$pass pgbench -n -S -M prepared -c 8 -j 8 -T 3 -h 127.0.0.1 -p "$port" -U "$user" bench 2>&1) || true
    kill -INT "$perf_pid" 2>/dev/null
    wait "$perf_pid" 2>/dev/null || true
    n=$(echo "$out" | awk '/number of transactions actually processed:/{print $NF; exit}')
    calls=$(awk -F, '/raw_syscalls:sys_enter/{print $1; exit}' "$WORK/syscalls-$name.csv" 2>/dev/null)
    if [ "${n:-0}" -gt 0 ] && [ -n "$calls" ] && [ "$calls" != "<not counted>" ] && [ "$calls" != "<not supported>" ]; then
        SYSCALL_ROWS+=("| $name | $calls | $n | $(awk -v c="$calls" -v n="$n" 'BEGIN{printf "%.2f", c / n}') |")
    else
        SYSCALL_ROWS+=("| $name | not counted | ${n:-–} | – |")
    fi
}
if [ "$PGBENCH_TIME" != 0 ]; then
    log "pgbench -S (simple and prepared; 1 and 8 clients; ${PGBENCH_TIME}s each)"
    for mode in simple prepared; do
        for clients in 1 8; do
            run_pgbench direct "$PG_PORT" postgres "$PG_SUPERUSER_PASSWORD" disable "" "$mode" "$clients"
            if [ "$DIRECT_TLS" = 1 ]; then
                run_pgbench direct-tls "$PG_PORT" postgres "$PG_SUPERUSER_PASSWORD" require "" "$mode" "$clients"
            fi
            run_pgbench forwarder "$FORWARDER_PORT" postgres "$PG_SUPERUSER_PASSWORD" disable "$FORWARDER_PID" "$mode" "$clients"
            run_pgbench pgbouncer "$PGB_PORT" postgres "$PG_SUPERUSER_PASSWORD" disable "$PGB_PID" "$mode" "$clients"
            run_pgbench pgbouncer-tls "$PGB_TLS_PORT" postgres "$PG_SUPERUSER_PASSWORD" require "$PGB_TLS_PID" "$mode" "$clients"
            run_pgbench pgate-plain "$PGATE_PLAIN_PORT" bench "$TOKEN" disable "$PGATE_PLAIN_PID" "$mode" "$clients"
            run_pgbench pgate-epoll-plain "$PGATE_EPOLL_PLAIN_PORT" bench "$TOKEN" disable "$PGATE_EPOLL_PLAIN_PID" "$mode" "$clients"
            run_pgbench pgate-allow "$PGATE_ALLOW_PORT" bench "$TOKEN" require "$PGATE_ALLOW_PID" "$mode" "$clients"
            run_pgbench pgate-policies "$PGATE_POL_PORT" bench "$TOKEN" require "$PGATE_POL_PID" "$mode" "$clients"
            run_pgbench pgate-epoll "$PGATE_EPOLL_PORT" bench "$TOKEN" require "$PGATE_EPOLL_PID" "$mode" "$clients"
        done
    done
    if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
        log "system calls per transaction (perf stat, pgbench -S -M prepared, 8 clients, 3 s each)"
        count_syscalls forwarder "$FORWARDER_PORT" postgres "$PG_SUPERUSER_PASSWORD" disable "$FORWARDER_PID"
        count_syscalls pgbouncer "$PGB_PORT" postgres "$PG_SUPERUSER_PASSWORD" disable "$PGB_PID"
        count_syscalls pgbouncer-tls "$PGB_TLS_PORT" postgres "$PG_SUPERUSER_PASSWORD" require "$PGB_TLS_PID"
        count_syscalls pgate-plain "$PGATE_PLAIN_PORT" bench "$TOKEN" disable "$PGATE_PLAIN_PID"
        count_syscalls pgate-epoll-plain "$PGATE_EPOLL_PLAIN_PORT" bench "$TOKEN" disable "$PGATE_EPOLL_PLAIN_PID"
        count_syscalls pgate-policies "$PGATE_POL_PORT" bench "$TOKEN" require "$PGATE_POL_PID"
        count_syscalls pgate-epoll "$PGATE_EPOLL_PORT" bench "$TOKEN" require "$PGATE_EPOLL_PID"
        printf '%s\n' "${SYSCALL_ROWS[@]}"
    else
        log "perf cannot count system calls here (install linux-perf; needs tracepoints): no syscall figures"
    fi
fi

# ------------------------------------------------------------------ result stream
# One large SELECT per query, through pgate without caps (pgate-allow), with caps set but
# not reached, with one masked text column (`filler`, redact) and with it hashed.
STREAM_REPEAT=${BENCH_STREAM_REPEAT:-100}
STREAM_ROWS=$((SCALE * 100000 * STREAM_REPEAT))
# Long enough for several whole queries per segment (one takes seconds).
STREAM_DURATION=${BENCH_STREAM_DURATION:-12}
if [ "$STREAM_REPEAT" != 0 ]; then
    stream_pgate() { # NAME PORT EXTRA-RULES
        mkdir -p "$WORK/stream-$1"
        cat > "$WORK/stream-$1/policy.kdl" <<KDL
$PGBENCH_TABLES
role "bench" {
    member claim="groups" value="bench"
    allow "select" table="public.pgbench_*"
    allow "select" table="pg_catalog.*"
    allow-function "pg_catalog.*"
    $3
}
KDL
        compile_policy "$WORK/stream-$1" "$WORK/stream-$1.pgt" >/dev/null
        pgate_config "pgate-stream-$1" "$2" "stream-$1.pgt" /dev/null
        "$PGATE" run --config "$WORK/pgate-stream-$1.kdl" 2>"$WORK/pgate-stream-$1.log" &
        PIDS+=("$!")
        eval "STREAM_PID_${1//-/_}=$!"
        wait_port "$2"
        export "PGATE_LOADTEST_PASSWORD_PGATE_$(echo "$1" | tr 'a-z-' 'A-Z_')=$TOKEN"
    }
    stream_pgate capped 54344 'limit rows=1000000000 bytes="512GiB"'
    stream_pgate redact 54345 'mask table="public.pgbench_accounts" column="filler" with="redact"'
    stream_pgate hash 54346 'mask table="public.pgbench_accounts" column="filler" with="hash"'
    STREAM_ARGS=(--target "direct=postgres://postgres@127.0.0.1:$PG_PORT/bench?sslmode=disable"
        --target "pgate-allow=postgres://bench@127.0.0.1:$PGATE_ALLOW_PORT/bench?sslrootcert=$WORK/ca.crt"
        --target "pgate-capped=postgres://bench@127.0.0.1:54344/bench?sslrootcert=$WORK/ca.crt"
        --target "pgate-redact=postgres://bench@127.0.0.1:54345/bench?sslrootcert=$WORK/ca.crt"
        --target "pgate-hash=postgres://bench@127.0.0.1:54346/bench?sslrootcert=$WORK/ca.crt"
        --proxy-pid "pgate-allow=$PGATE_ALLOW_PID"
        --proxy-pid "pgate-capped=$STREAM_PID_capped"
        --proxy-pid "pgate-redact=$STREAM_PID_redact"
        --proxy-pid "pgate-hash=$STREAM_PID_hash"
        --workload stream --connections 1 --duration "$STREAM_DURATION" --rounds "$ROUNDS" --warmup 0
        --scale "$SCALE" --stream-rows "$STREAM_ROWS" --stream-repeat "$STREAM_REPEAT"
        --max-rows $((STREAM_ROWS + 1)) --clk-tck "$CLK_TCK")
    log "result stream: $STREAM_ROWS rows per query (pgate without caps, with caps, redact, hash)"
    "$LOADTEST" "${STREAM_ARGS[@]}" --format markdown > "$WORK/stream.md" || true
    cat "$WORK/stream.md"
fi

# ------------------------------------------------------------------ idle sessions
# Memory per idle authenticated session: IDLE sessions per proxy (TLS where the target
# has it; each one `SELECT 1`), held while the proxy's RSS is read (pgate-loadtest
# --idle-sessions). PostgreSQL gets enough connections for them (PG_MAX_CONNECTIONS);
# PgBouncer last, as it keeps its server connections after its clients leave.
IDLE_ROWS=""
if [ "$IDLE" != 0 ]; then
    log "memory per idle session ($IDLE sessions per proxy)"
    IDLE_ARGS=(
        --target "pgate-policies=postgres://bench@127.0.0.1:$PGATE_POL_PORT/bench?sslrootcert=$WORK/ca.crt"
        --target "pgate-epoll=postgres://bench@127.0.0.1:$PGATE_EPOLL_PORT/bench?sslrootcert=$WORK/ca.crt"
        --target "pgate-plain=postgres://bench@127.0.0.1:$PGATE_PLAIN_PORT/bench?sslmode=disable"
        --target "pgbouncer-tls=postgres://postgres@127.0.0.1:$PGB_TLS_PORT/bench?sslmode=require"
        --proxy-pid "pgbouncer-tls=$PGB_TLS_PID" --proxy-pid "pgate-policies=$PGATE_POL_PID"
        --proxy-pid "pgate-epoll=$PGATE_EPOLL_PID" --proxy-pid "pgate-plain=$PGATE_PLAIN_PID"
        --idle-sessions "$IDLE"
    )
    IDLE_ROWS=$("$LOADTEST" "${IDLE_ARGS[@]}") || true
    echo "$IDLE_ROWS"
fi

# ------------------------------------------------------------------ report
pgbench_table() {
    echo "| target | mode | clients | tps | tps × direct | latency avg ms | transactions | proxy CPU s/10k tx | proxy context switches/tx |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    local row base=""
    for row in "${PGBENCH_ROWS[@]}"; do
        IFS='|' read -r name mode clients tps lat n cpu ctx <<<"$row"
        [ "$name" = direct ] && base=$tps
        local ratio="–"
        if [ -n "$base" ] && [ "$tps" != failed ]; then
            ratio=$(awk -v a="$tps" -v b="$base" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "–" }')
        fi
        echo "| $name | $mode | $clients | $tps | $ratio | $lat | $n | $cpu | $ctx |"
    done
}
# BENCH_COMMIT: what was measured, when run from an exported tree without .git.
COMMIT=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
DIRTY=""
if [ -z "${BENCH_COMMIT:-}" ] && git status --porcelain 2>/dev/null | grep -q .; then
    DIRTY=" (with uncommitted changes)"
fi
{
    echo "# pgate benchmark report"
    echo
    echo "Produced by \`ci/bench.sh\` — do not edit by hand; run it again."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| machine | $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM |"
    echo "| kernel | $(uname -sr) |"
    echo "| PostgreSQL | $("$(pg_bindir)/postgres" --version | awk '{print $3}') (fsync off, loopback TCP) |"
    echo "| PgBouncer | $(pgbouncer --version | head -n 1 | awk '{print $2}') (session mode, SCRAM, no TLS) |"
    echo "| pgate | commit $COMMIT$DIRTY, release build, \`workers 2\`, TLS from the client, plaintext to PostgreSQL |"
    echo "| data | pgbench scale $SCALE ($((SCALE * 100000)) accounts) |"
    echo
    echo "## Targets"
    echo
    echo "| target | what | client TLS | authentication |"
    echo "|---|---|---|---|"
    echo "| direct | PostgreSQL | no | SCRAM-SHA-256 |"
    [ "$DIRECT_TLS" = 1 ] && echo "| direct-tls | PostgreSQL | yes (TLS 1.3, verified) | SCRAM-SHA-256 |"
    echo "| forwarder | the bare forwarder (\`forwarder/\`: an io_uring relay that parses nothing, 2 threads) → PostgreSQL | no | SCRAM-SHA-256 (PostgreSQL's) |"
    echo "| pgbouncer | PgBouncer → PostgreSQL | no | SCRAM-SHA-256 (client ↔ PgBouncer, stored SCRAM secret; pass-through to PostgreSQL) |"
    echo "| pgbouncer-tls | the same with \`client_tls_sslmode = require\` | yes (not verified) | same |"
    echo "| pgate-plain | pgate-policies without client TLS (plaintext tokens from loopback) | no | JWT (ES256) as cleartext password; pgate ↔ PostgreSQL SCRAM |"
    echo "| pgate-epoll-plain | the same, \`--runtime epoll\` | no | same |"
    echo "| pgate-allow | pgate, allow-all policy, audit to /dev/null (lines still formatted) → PostgreSQL | yes (TLS 1.3, verified) | JWT (ES256) as cleartext password; pgate ↔ PostgreSQL SCRAM |"
    echo "| pgate-policies | pgate, \`policies/\` + a \`bench\` role, audit to a file → PostgreSQL; driver \`auto\` ($(grep -ho 'workers, [a-z_]*' "$WORK/pgate-policies.log" | head -n1 | sed 's/workers, //')) | yes (TLS 1.3, verified) | same |"
    echo "| pgate-epoll | the same, \`--runtime epoll\` | yes (TLS 1.3, verified) | same |"
    echo
    echo "All processes share one machine with the client (${CLK_TCK} clock ticks/s for CPU accounting)."
    echo "Ratios (×) are to \`direct\`: latency ratio > 1 is slower, throughput ratio < 1 is slower."
    echo "\"proxy CPU s/10k q\" is the proxy process's user + system CPU (from /proc/PID/stat,"
    echo "read around every measured window) per 10,000 statements (tx-readonly counts 3 per"
    echo "transaction, storm 1 per connection); PostgreSQL's own CPU is not included."
    echo "\"client CPU\" is pgate-loadtest's own, the same way: its overhead per target (TLS and"
    echo "authentication differ: SCRAM's PBKDF2 for direct and PgBouncer, a token for pgate)."
    echo
    echo "## pgate-loadtest"
    echo
    echo "Workloads: point select \`SELECT abalance FROM pgbench_accounts WHERE aid = \$1\` (random aid)"
    echo "over the simple protocol (aid inlined), the extended protocol with the unnamed statement"
    echo "(Parse/Bind/Describe/Execute/Sync, as PQexecParams) and a statement prepared once per"
    echo "connection (Bind/Describe/Execute/Sync, as PQexecPrepared); \`tx-readonly\`: BEGIN; point"
    echo "select; COMMIT as three simple-protocol round trips, latency per transaction; \`stream\`:"
    echo "\`SELECT * FROM pgbench_accounts LIMIT $((SCALE * 100000))\`, MB/s of protocol bytes; \`storm\`:"
    echo "connect + TLS (full handshake, no resumption) + authentication + \`SELECT 1\` + close."
    [ "$LT_RC" != 0 ] && echo && echo "**pgate-loadtest exited with status $LT_RC** (a workload measured nothing on some target)."
    cat "$WORK/loadtest.md"
    if [ -n "$PLOTS" ]; then
        echo
        echo "### Latency distributions"
        echo
        echo "Latency against the percentile, the tail stretched (90 %, 99 %, 99.9 % equally spaced), per workload:"
        echo
        for p in $PLOTS; do echo "![${p%.png}]($p)"; echo; done
    fi
    echo
    if [ "$PGBENCH_TIME" != 0 ]; then
        echo "## pgbench -S (independent measure)"
        echo
        echo "Proxy CPU and context switches from /proc (utime + stime; voluntary and involuntary"
        echo "switches of all the proxy's threads) over each run."
        echo
        pgbench_table
        echo
        if [ "${#SYSCALL_ROWS[@]}" -gt 0 ]; then
            echo "### System calls per transaction"
            echo
            echo "perf stat -e raw_syscalls:sys_enter on the proxy (all threads) during pgbench -S -M prepared,"
            echo "8 clients, 3 s, in a pass of its own (counting slows every system call)."
            echo
            echo "| target | system calls | transactions | per transaction |"
            echo "|---|---:|---:|---:|"
            printf '%s\n' "${SYSCALL_ROWS[@]}"
            echo
        fi
    fi
    if [ "$STREAM_REPEAT" != 0 ]; then
        echo "## Result stream"
        echo
        echo "One connection, \`SELECT a.* FROM pgbench_accounts a CROSS JOIN generate_series(1, $STREAM_REPEAT) g"
        echo "LIMIT $STREAM_ROWS\` (about $((STREAM_ROWS / 10000)) MB of rows) per query, run until each segment's time is"
        echo "up. pgate-allow: no caps; pgate-capped: \`limit rows=1000000000 bytes=\"512GiB\"\` (counted, never"
        echo "reached); pgate-redact / pgate-hash: \`filler\` (char(84)) masked with \`redact\` / \`hash\`, so"
        echo "every row is rewritten. Masking cost per row = (1/masked − 1/unmasked MB/s) × bytes per row."
        echo
        cat "$WORK/stream.md"
        echo
    fi
    if [ "$IDLE" != 0 ]; then
        echo "## Memory per idle session"
        echo
        echo "$IDLE sessions per proxy, each authenticated and one \`SELECT 1\` done, then held; the proxy's"
        echo "resident memory (VmRSS) before and 2 s after, divided by the sessions (kernel socket buffers"
        echo "are not in it)."
        echo
        echo "$IDLE_ROWS"
        echo
    fi
    echo "## Commands"
    echo
    echo '```sh'
    echo "BENCH_DURATION=$DURATION BENCH_ROUNDS=$ROUNDS BENCH_WARMUP=$WARMUP BENCH_CONNS=$CONNS BENCH_SCALE=$SCALE BENCH_PGBENCH_TIME=$PGBENCH_TIME ci/bench.sh"
    echo
    echo "# pgate-loadtest (passwords and the token in PGATE_LOADTEST_PASSWORD_<TARGET>)"
    printf '%q ' target/release/pgate-loadtest "${LT_ARGS[@]}" --format markdown --json-out bench/loadtest.json | sed "s#$WORK#\$WORK#g"
    echo
    echo
    echo "# the token: pgate token --key \$WORK/keys/signing-key.pem --iss https://idp.bench.pgate --aud pgate --ttl 2h --sub bench@example.com --claim groups=bench"
    for c in "${PGBENCH_CMDS[@]}"; do echo "$c"; done
    if [ "$STREAM_REPEAT" != 0 ]; then
        printf '%q ' target/release/pgate-loadtest "${STREAM_ARGS[@]}" --format markdown | sed "s#$WORK#\$WORK#g"
        echo
    fi
    echo '```'
    echo
    echo "Policies: \`\$WORK/allow/policy.kdl\` and \`\$WORK/policies/bench.kdl\` as written by \`ci/bench.sh\`;"
    echo "PgBouncer: \`$PGB_DIR/pgbouncer.ini\` as written by it (WORK=$WORK)."
} > "$OUT/REPORT.md"
log "wrote $OUT/REPORT.md and $OUT/loadtest.json"
