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

# pg_start NAME PORT — start a throwaway cluster in /tmp/pgate-NAME, loopback only, and
# export PG_DATA_DIR, PG_PORT, PG_SOCKET_DIR, PG_LOG, PGATE_TEST_DATABASE_URL and the
# passwords below. Local (socket) connections are trusted (setup, psql -h socket);
# TCP needs a password: SCRAM by default, md5 and trust for the two test users that
# exercise pgate's other upstream authentication methods.
# PG_LOG_ALL=1 sets log_statement=all (the audit test compares it with pgate's audit log).
pg_start() {
    local name=$1 port=$2 bin
    bin=$(pg_bindir)
    PG_DATA_DIR=/tmp/pgate-$name/data
    PG_SOCKET_DIR=/tmp/pgate-$name/socket
    PG_LOG=/tmp/pgate-$name/server.log
    PG_PORT=$port
    PG_SUPERUSER_PASSWORD=pgate-test-superuser
    export PG_DATA_DIR PG_SOCKET_DIR PG_PORT PG_LOG PG_SUPERUSER_PASSWORD
    pg_stop_dir "$PG_DATA_DIR" || true
    rm -rf "/tmp/pgate-$name"
    mkdir -p "$PG_DATA_DIR" "$PG_SOCKET_DIR"
    echo "$PG_SUPERUSER_PASSWORD" > "/tmp/pgate-$name/pwfile"
    local run=()
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "/tmp/pgate-$name"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$PG_DATA_DIR" -U postgres --pwfile="/tmp/pgate-$name/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 \
        >"/tmp/pgate-$name/initdb.log"
    cat > "/tmp/pgate-$name/pg_hba.conf" <<HBA
local all all trust
host all pgate_md5 127.0.0.1/32 md5
host all pgate_trust 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
    "${run[@]}" cp "/tmp/pgate-$name/pg_hba.conf" "$PG_DATA_DIR/pg_hba.conf"
    # A throwaway CA and a server certificate it signs, so clients (pgate among them) can
    # use TLS upstream with verification.
    make_cert "/tmp/pgate-$name" server
    chmod 600 "/tmp/pgate-$name/server.key"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "/tmp/pgate-$name/server.key" "/tmp/pgate-$name/server.crt"; fi
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$PG_SOCKET_DIR'"
        echo "fsync = off"
        echo "full_page_writes = off"
        echo "max_connections = ${PG_MAX_CONNECTIONS:-200}"
        echo "ssl = on"
        echo "ssl_cert_file = '/tmp/pgate-$name/server.crt'"
        echo "ssl_key_file = '/tmp/pgate-$name/server.key'"
        echo "log_line_prefix = '%m [%p] db=%d,user=%u,app=%a '"
        if [ "${PG_LOG_ALL:-0}" = 1 ]; then echo "log_statement = 'all'"; fi
    } | "${run[@]}" tee -a "$PG_DATA_DIR/postgresql.conf" >/dev/null
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DATA_DIR" -l "$PG_LOG" -w -t 60 start >/dev/null
    psql_admin -c "SET password_encryption = 'md5'; CREATE ROLE pgate_md5 LOGIN SUPERUSER PASSWORD 'pgate-test-md5';" >/dev/null
    psql_admin -c "CREATE ROLE pgate_trust LOGIN SUPERUSER;" >/dev/null
    export PGATE_TEST_DATABASE_URL="postgres://postgres:$PG_SUPERUSER_PASSWORD@127.0.0.1:$port/postgres"
    export PGATE_TEST_PG_SOCKET="$PG_SOCKET_DIR" PGATE_TEST_PG_PORT="$port" PGATE_TEST_PG_LOG="$PG_LOG"
    export PGATE_TEST_PG_CA="/tmp/pgate-$name/ca.crt"
    log "PostgreSQL ($bin) listening on 127.0.0.1:$port"
}

# psql as the superuser over the trusted local socket.
psql_admin() {
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d "${PGDATABASE_ADMIN:-postgres}" "$@"
}

# make_cert DIR NAME — DIR/ca.crt (a throwaway CA, created once per DIR) and DIR/NAME.crt +
# DIR/NAME.key, a server certificate for localhost / 127.0.0.1 signed by it.
make_cert() {
    local dir=$1 name=$2
    if [ ! -f "$dir/ca.crt" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=pgate throwaway CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > "$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
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

# install_drivers — the client libraries of the driver matrix, from their registries, into
# target/drivers (psycopg 3 and asyncpg from PyPI, node-postgres from npm), and pgJDBC from
# Debian; exports PGATE_DRIVERS_PYTHON, PGATE_DRIVERS_NODE_PATH and PGATE_DRIVERS_JDBC_JAR
# for dataplane/tests/drivers.rs.
install_drivers() {
    install_packages python3 python3-venv nodejs default-jdk-headless libpostgresql-jdbc-java
    command -v npm >/dev/null || install_packages npm
    local d="$ROOT/target/drivers"
    mkdir -p "$d"
    if [ ! -x "$d/venv/bin/python" ]; then
        python3 -m venv "$d/venv"
    fi
    log "installing psycopg 3 and asyncpg (PyPI), node-postgres (npm)"
    "$d/venv/bin/pip" install -q --disable-pip-version-check 'psycopg[binary]>=3.2,<3.4' 'asyncpg>=0.30,<0.33'
    npm install --prefix "$d/node" --silent --no-audit --no-fund 'pg@^8.13' 'pg-copy-streams@^7' >/dev/null
    export PGATE_DRIVERS_PYTHON="$d/venv/bin/python" PGATE_DRIVERS_NODE_PATH="$d/node/node_modules"
    export PGATE_DRIVERS_JDBC_JAR=/usr/share/java/postgresql.jar
}
