# Shared helpers for ci/*.sh. Sourced, not run.
# Installs what the scripts need on a fresh Debian machine that has only the Rust toolchain,
# and starts a throwaway PostgreSQL owned by the `postgres` system user.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# install_packages PKG... — apt-get install only what is missing (apt-get update first).
install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || { echo "no PostgreSQL server found under /usr/lib/postgresql" >&2; return 1; }
    echo "$d"
}

# pg_start NAME PORT — start a throwaway cluster in /tmp/pgate-NAME (trust auth, loopback
# only) and export PG_DATA_DIR, PG_PORT, PG_SOCKET_DIR and PGATE_TEST_DATABASE_URL.
pg_start() {
    local name=$1 port=$2 bin
    bin=$(pg_bindir)
    PG_DATA_DIR=/tmp/pgate-$name/data
    PG_SOCKET_DIR=/tmp/pgate-$name/socket
    PG_PORT=$port
    export PG_DATA_DIR PG_SOCKET_DIR PG_PORT
    pg_stop_dir "$PG_DATA_DIR" || true
    rm -rf "/tmp/pgate-$name"
    mkdir -p "$PG_DATA_DIR" "$PG_SOCKET_DIR"
    local run=()
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "/tmp/pgate-$name"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$PG_DATA_DIR" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/tmp/pgate-$name/initdb.log
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DATA_DIR" -l "/tmp/pgate-$name/server.log" -w -t 60 start \
        -o "-p $port -k $PG_SOCKET_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off ${PG_EXTRA_OPTS:-}" >/dev/null
    export PGATE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL ($bin) listening on 127.0.0.1:$port"
}

pg_stop_dir() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 0
    [ -f "$dir/postmaster.pid" ] || return 0
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true
    else
        "$bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true
    fi
}

pg_stop() {
    [ -n "${PG_DATA_DIR:-}" ] && pg_stop_dir "$PG_DATA_DIR"
}
