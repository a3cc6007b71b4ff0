//! The live environment the integration test binaries share: one pgate in front of the
//! PostgreSQL `ci/test.sh` starts, the test database, tokens and clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgate::token::{MintArgs, init_keys, mint};
use serde_json::Value;

pub const ISSUER: &str = "https://idp.pgate.test";
pub const AUDIENCE: &str = "pgate-it";
pub const DB: &str = "pgate_it";

pub const POLICY: &str = r#"
catalog "postgresql"
table "public.pgbench_accounts" { columns "aid" "bid" "abalance" "filler"; }
table "public.pgbench_branches" { columns "bid" "bbalance" "filler"; }
table "public.pgbench_tellers" { columns "tid" "bid" "tbalance" "filler"; }
table "public.pgbench_history" { columns "tid" "bid" "aid" "delta" "mtime" "filler"; }
table "public.customers" {
    columns "id" "name" "email"
    column "ssn" { tags "secret"; }
}
table "public.events" { columns "id" "payload"; }
table "compat.visible" { columns "v"; }
table "public.masked_things" {
    columns "id" "t" "vc" "n" "big" "sm" "u" "b" "ts" "doc" "gen" "plain"
}
table "public.recreated" { columns "id" "secret"; }
table "public.grown" { columns "id" "secret"; }
function "pg_catalog.pg_read_file"

role "analyst" {
    member claim="groups" value="analysts"
    allow "select" table="public.pgbench_*"
    allow "select" tag="pg-metadata"
    // The upstream-TLS test looks at its own connection.
    allow "select" table="pg_catalog.pg_stat_ssl"
    allow "select" table="public.customers" {
        columns "id" "name" "email"
    }
    allow "select" "insert" "copy-in" "copy-out" table="public.events"
    // "call": the fast-path FunctionCall test shows it is refused even so.
    allow "transaction" "session" "prepare" "cursor" "notify" "call"
    allow-function "pg_catalog.*"
    deny-function "pg_catalog.pg_read_file"
}

// Sessions per token (tests/integration.rs): a token of this role opens one session, and
// one of "one-at-a-time" holds one open at a time.
role "single-use" {
    member claim="groups" value="single-use"
    allow "select" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    token sessions=1
}
role "bound" {
    member claim="groups" value="bound"
    allow "select" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    token binding="certificate"
}
role "one-at-a-time" {
    member claim="groups" value="one-at-a-time"
    allow "select" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    token concurrent=1
}

// Delegation (tests/integration.rs): the subject's own session copies events out; acting
// through an agent (an `act` chain) it may not and gets 5 rows a statement; nothing acts
// through two agents.
role "delegating" {
    member claim="groups" value="delegating"
    allow "select" table="public.pgbench_accounts"
    allow "select" "copy-out" table="public.events"
    allow-function "pg_catalog.*"
    delegated {
        deny "copy-out" table="*"
        limit rows=5
    }
    delegation max-depth=1
}

// Identity budgets (tests/integration.rs, tests/shared_store.rs): 30 rows a day per
// subject, across sessions (and replicas sharing a store).
role "budgeted" {
    member claim="groups" value="budgeted"
    allow "select" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    budget rows=30 per="day" scope="identity"
}

// Result caps (tests/integration.rs): at most 100 rows and 64 KiB per statement.
role "capped" {
    member claim="groups" value="capped"
    allow "select" table="public.pgbench_*"
    allow "copy-out" table="public.pgbench_accounts"
    allow "select" "insert" table="public.events"
    allow "transaction" "session" "cursor"
    allow-function "pg_catalog.*"
    limit rows=100 bytes="64KiB"
}

// Byte rates (tests/integration.rs).
role "throttled" {
    member claim="groups" value="throttled"
    allow "select" "copy-out" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    rate bytes="4MiB" per="second" burst="4MiB" scope="session" on-exceed="throttle"
}
role "shared-rate" {
    member claim="groups" value="shared-rate"
    allow "select" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    rate bytes="2MiB" per="second" burst="2MiB" scope="identity" on-exceed="throttle"
}
role "rate-terminate" {
    member claim="groups" value="rate-terminate"
    allow "select" table="public.pgbench_accounts"
    allow-function "pg_catalog.*"
    rate bytes="1MiB" per="second" burst="1MiB" scope="session" on-exceed="terminate"
}

// Result masks (tests/masks.rs): one mask of each kind on each type family.
role "masked" {
    member claim="groups" value="masked"
    allow "select" "copy-out" table="public.masked_things"
    allow "select" "copy-out" table="public.customers" {
        columns "id" "name" "email"
    }
    allow "select" table="public.recreated"
    allow "select" "copy-out" table="public.grown"
    allow "select" tag="pg-metadata"
    allow "transaction" "session" "prepare" "cursor"
    allow-function "pg_catalog.*"
    mask table="public.customers" column="email" with="hash"
    mask table="public.customers" column="name" with="redact"
    mask table="public.masked_things" column="t" with="hash"
    mask table="public.masked_things" column="vc" with="redact"
    mask table="public.masked_things" column="n" with="hash"
    mask table="public.masked_things" column="big" with="hash"
    mask table="public.masked_things" column="sm" with="hash"
    mask table="public.masked_things" column="u" with="hash"
    mask table="public.masked_things" column="b" with="hash"
    mask table="public.masked_things" column="ts" with="null"
    mask table="public.masked_things" column="doc" with="null"
    mask table="public.masked_things" column="gen" with="hash"
    mask table="public.recreated" column="secret" with="hash"
    mask table="public.grown" column="secret" with="hash"
}

// The search path (tests/search_path.rs): schema `compat` only.
role "compat" {
    member claim="groups" value="compat"
    allow "select" table="compat.*"
    allow "transaction" "session" "prepare"
    allow-function "pg_catalog.*"
}

// What pg_dump needs to dump schema `dumpme` (tests/drivers.rs).
role "dumper" {
    member claim="groups" value="dumpers"
    allow "select" "copy-out" "lock" table="dumpme.*"
    allow "select" table="pg_catalog.pg_settings"
    allow "select" table="pg_catalog.pg_foreign_data_wrapper"
    allow "select" table="pg_catalog.pg_foreign_server"
    allow "select" table="pg_catalog.pg_db_role_setting"
    allow "select" tag="pg-metadata"
    allow "transaction" "session" "prepare"
    allow-function "pg_catalog.*"
    deny-function "pg_catalog.pg_read_file"
}
"#;

/// The `hash` masks' key material of the live pgates (`masks hash-key-file`).
pub const MASK_KEY: &str = "pgate-live-tests-mask-key-0123456789abcdef\n";

pub struct Env {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub socket: String,
    pub pg_port: String,
    pub pg_log: PathBuf,
    pub audit: PathBuf,
    pub key: PathBuf,
    pub kid: String,
    pub _child: ChildGuard,
}

pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(setup).as_ref()
}

#[macro_export]
macro_rules! require_env {
    () => {
        match $crate::live::env() {
            Some(e) => e,
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PGATE_TEST_* not set under CI: run through ci/test.sh"
                );
                eprintln!("skipped: PGATE_TEST_DATABASE_URL not set (run ci/test.sh)");
                return;
            }
        }
    };
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn admin_psql(e_socket: &str, port: &str, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            e_socket,
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "admin psql failed: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The first audit line of `event` in the log at `path` that `pick` accepts, waiting up
/// to 10 s for it (lines are written a little after the client sees the answer).
pub fn audit_event_in(
    path: &Path,
    event: &str,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(v) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == event && pick(v))
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {event} line in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What pgate's metrics endpoint at `addr` says.
pub fn metrics_text(addr: &SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts a pgate with the shared keys, certificate and policy in `dir`, the given upstream
/// line and extra settings; waits until it listens. Its audit log is `audit-NAME.jsonl`.
pub fn start_pgate(
    dir: &Path,
    name: &str,
    upstream: &str,
    extra: &str,
) -> Option<(ChildGuard, SocketAddr)> {
    start_pgate_with(
        dir,
        name,
        upstream,
        "limits max-message-bytes=1048576",
        extra,
    )
}

/// Builds `policy` (KDL) into a table and puts it at `path` the way a rollout does: write
/// a new file, rename it over the old one.
pub fn build_table(policy: &str, path: &Path) {
    let src = path.with_extension("kdl");
    std::fs::write(&src, policy).unwrap();
    let t = pgate_compile::load_table(&src).expect("the policy compiles");
    let tmp = path.with_extension("pgt.tmp");
    std::fs::write(&tmp, &t.bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn start_pgate_with(
    dir: &Path,
    name: &str,
    upstream: &str,
    limits: &str,
    extra: &str,
) -> Option<(ChildGuard, SocketAddr)> {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let config = format!(
        r#"
listen "{addr}"
workers 2
tls cert="server.crt" key="server.key" client-certs="request"
allow-plaintext-loopback #true
{upstream}
identity issuer="{ISSUER}" audience="{AUDIENCE}" jwks="keys/jwks.json" leeway="5s"
policy "policy-{name}.pgt"
audit path="audit-{name}.jsonl" on-failure="block"
{limits}
masks hash-key-file="mask.key"
{extra}
"#
    );
    let table = dir.join(format!("policy-{name}.pgt"));
    if !table.exists() {
        build_table(POLICY, &table);
    }
    let config_path = dir.join(format!("pgate-{name}.kdl"));
    std::fs::write(&config_path, config).ok()?;
    let log = dir.join(format!("pgate-{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_pgate"))
        .args(["run", "--exit-on-stdin-eof", "--config"])
        .arg(&config_path)
        // pgate exits when this pipe closes, i.e. when the test process ends (the guard in
        // a static is never dropped).
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).ok()?)
        .spawn()
        .expect("pgate starts");
    let guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "pgate {name} did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((guard, addr))
}

pub fn setup() -> Option<Env> {
    std::env::var("PGATE_TEST_DATABASE_URL").ok()?;
    let socket = std::env::var("PGATE_TEST_PG_SOCKET").ok()?;
    let pg_port = std::env::var("PGATE_TEST_PG_PORT").ok()?;
    let pg_log = PathBuf::from(std::env::var("PGATE_TEST_PG_LOG").ok()?);
    let password =
        std::env::var("PG_SUPERUSER_PASSWORD").unwrap_or_else(|_| "pgate-test-superuser".into());

    // A fresh database with the tables the policy talks about.
    admin_psql(
        &socket,
        &pg_port,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
    );
    admin_psql(
        &socket,
        &pg_port,
        "postgres",
        &format!("CREATE DATABASE {DB}"),
    );
    admin_psql(
        &socket,
        &pg_port,
        DB,
        "CREATE TABLE customers (id int primary key, name text, email text, ssn text);
         INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', '123-45-6789'), (2, 'Bob', 'bob@example.com', '987-65-4321');
         CREATE TABLE events (id serial primary key, payload text);
         CREATE SCHEMA compat;
         CREATE TABLE compat.visible (v text);
         INSERT INTO compat.visible VALUES ('compat-row');
         CREATE SCHEMA other;
         CREATE TABLE other.hidden (secret text);
         INSERT INTO other.hidden VALUES ('other-secret');
         CREATE TABLE compat.twin (v text);
         INSERT INTO compat.twin VALUES ('compat-twin');
         CREATE TABLE other.twin (v text);
         INSERT INTO other.twin VALUES ('other-twin-secret');
         CREATE FUNCTION other.leak() RETURNS text LANGUAGE sql AS 'SELECT secret FROM other.hidden';
         CREATE TABLE recreated (id int, secret text);
         CREATE TABLE grown (id int);
         INSERT INTO grown VALUES (1);
         INSERT INTO recreated VALUES (1, 'first');
         CREATE TABLE masked_things (id int primary key, t text, vc varchar(40), n int4,
             big int8, sm int2, u uuid, b bytea, ts timestamptz, doc jsonb,
             gen text GENERATED ALWAYS AS (t || '!') STORED, plain text);
         INSERT INTO masked_things (id, t, vc, n, big, sm, u, b, ts, doc, plain) VALUES
           (1, 'Zoë', 'visible? no', 42, -9000000000, 7, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '\\x00ff5c0a', now(), '{\"a\": 1}', 'tab\there'),
           (2, '日本 \\ back,slash \"q\"', 'x', -1, 0, -32768, '00000000-0000-0000-0000-000000000000',
            '', now(), 'null', E'line\nbreak'),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (4, repeat('long-', 100000), 'y', 2147483647, 9223372036854775807, 32767,
            'ffffffff-ffff-ffff-ffff-ffffffffffff', decode(repeat('ab', 1000), 'hex'), now(), '[]', 'p');",
    );
    let st = Command::new("pgbench")
        .args([
            "-i", "-s", "1", "-q", "-h", &socket, "-p", &pg_port, "-U", "postgres", DB,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("pgbench runs");
    assert!(st.success(), "pgbench -i failed");

    let dir = std::env::temp_dir().join(format!("pgate-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let keys = init_keys(&dir.join("keys")).expect("init keys");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    std::fs::write(dir.join("server.crt"), cert.cert.pem()).ok()?;
    std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem()).ok()?;
    std::fs::write(dir.join("db.pass"), format!("{password}\n")).ok()?;
    std::fs::write(dir.join("mask.key"), MASK_KEY).ok()?;
    let metrics_port = free_port();
    let upstream = upstream_at(pg_port.parse().ok()?);
    let extra = format!(r#"metrics "127.0.0.1:{metrics_port}""#);
    let (guard, addr) = start_pgate(&dir, "main", &upstream, &extra)?;
    let audit = dir.join("audit-main.jsonl");
    Some(Env {
        dir,
        addr,
        metrics: format!("127.0.0.1:{metrics_port}").parse().ok()?,
        socket,
        pg_port,
        pg_log,
        audit,
        key: keys.key_path,
        kid: keys.kid,
        _child: guard,
    })
}

pub struct TokenSpec<'a> {
    pub sub: &'a str,
    pub groups: &'a str,
    pub ttl: u64,
    pub issued: u64,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub key: Option<&'a Path>,
    pub kid: Option<&'a str>,
    /// The `act` chain, outermost first (default: one agent, `ci-agent`).
    pub act: &'a [&'a str],
}

impl Default for TokenSpec<'_> {
    fn default() -> Self {
        TokenSpec {
            sub: "alice@example.com",
            groups: "analysts",
            ttl: 600,
            issued: now_unix(),
            issuer: ISSUER,
            audience: AUDIENCE,
            key: None,
            kid: None,
            act: &["ci-agent"],
        }
    }
}

pub fn token(e: &Env, s: TokenSpec<'_>) -> String {
    mint(&MintArgs {
        key_path: s
            .key
            .map(Path::to_path_buf)
            .unwrap_or_else(|| e.key.clone()),
        kid: s.kid.map(str::to_owned),
        sub: s.sub.into(),
        claims: vec![("groups".into(), Value::String(s.groups.into()))],
        act: s.act.iter().map(|a| a.to_string()).collect(),
        ttl_secs: s.ttl,
        issuer: s.issuer.into(),
        audience: s.audience.into(),
        now_unix: s.issued,
    })
    .expect("mint")
}

/// A current-thread runtime for a test's async part.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn good_token(e: &Env) -> String {
    token(e, TokenSpec::default())
}

pub fn psql(e: &Env, token: &str, sslmode: &str, args: &[&str]) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &e.addr.port().to_string(),
            "-U",
            "analyst",
            "-d",
            DB,
        ])
        .args(args)
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", sslmode)
        .output()
        .expect("psql runs")
}

pub async fn client(e: &Env, token: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    client_at(e.addr, token).await
}

/// tokio-postgres as user `analyst` to the pgate at `addr`, plaintext (loopback).
pub async fn client_at(
    addr: SocketAddr,
    token: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    client_as(addr, "analyst", token).await
}

/// tokio-postgres as `user` (the role to take) to the pgate at `addr`, plaintext.
pub async fn client_as(
    addr: SocketAddr,
    user: &str,
    token: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(addr.port())
        .user(user)
        .dbname(DB)
        .password(token)
        .application_name("pgate-it")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (c, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(c)
}

/// A client straight to PostgreSQL (as its superuser, the test database): the oracle side
/// of tests that compare pgate with the server.
pub async fn direct() -> tokio_postgres::Client {
    let url = std::env::var("PGATE_TEST_DATABASE_URL").unwrap();
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.dbname(DB);
    let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

pub fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_else(|| format!("no db error: {e}"))
}

/// The upstream line of a pgate config: PostgreSQL (or a relay in front of it) at `port`.
pub fn upstream_at(port: u16) -> String {
    format!(r#"upstream host="127.0.0.1" port={port} user="postgres" password-file="db.pass""#)
}

pub fn upstream_line(e: &Env) -> String {
    upstream_at(e.pg_port.parse().unwrap())
}

/// A raw protocol session to pgate as `analyst` with `token`, read up to its first
/// ReadyForQuery.
pub fn startup_and_auth(e: &Env, token: &str) -> TcpStream {
    startup_and_auth_with(e, token, &[])
}

/// [`startup_and_auth`] with more startup parameters.
pub fn startup_and_auth_with(e: &Env, token: &str, params: &[(&str, &str)]) -> TcpStream {
    startup_and_auth_as(e, "analyst", token, params)
}

/// A raw connection as `user` (the role to take), logged in, after its ReadyForQuery.
pub fn startup_and_auth_as(e: &Env, user: &str, token: &str, params: &[(&str, &str)]) -> TcpStream {
    login_at(e.addr, user, token, params)
}

/// A raw connection to the pgate at `addr` as `user`, logged in with `token`, after its
/// ReadyForQuery.
pub fn login_at(addr: SocketAddr, user: &str, token: &str, params: &[(&str, &str)]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut m = Vec::new();
    pgate_core::client::write_startup(
        &mut m,
        [("user", user), ("database", DB)]
            .into_iter()
            .chain(params.iter().copied()),
    );
    s.write_all(&m).unwrap();
    let mut r = [0u8; 9];
    s.read_exact(&mut r).unwrap();
    assert_eq!(&r, &[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
    let mut p = token.as_bytes().to_vec();
    p.push(0);
    let mut pm = Vec::new();
    pgate_core::wire::write_message(&mut pm, b'p', &p);
    s.write_all(&pm).unwrap();
    // Read up to ReadyForQuery.
    while read_message(&mut s).0 != b'Z' {}
    s
}

/// One backend message: its tag and body.
pub fn read_message<R: Read>(s: &mut R) -> (u8, Vec<u8>) {
    let mut h = [0u8; 5];
    s.read_exact(&mut h).unwrap();
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    (h[0], body)
}

/// Sends a simple Query.
pub fn send_query<W: Write>(s: &mut W, sql: &str) {
    let mut q = vec![b'Q'];
    q.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    q.extend_from_slice(sql.as_bytes());
    q.push(0);
    s.write_all(&q).unwrap();
}

/// The tags of the backend messages up to and including ReadyForQuery.
pub fn tags_until_ready<R: Read>(s: &mut R) -> Vec<u8> {
    let mut tags = Vec::new();
    loop {
        let (t, _) = read_message(s);
        tags.push(t);
        if t == b'Z' {
            return tags;
        }
    }
}

/// Waits (at most `secs`) until `done` holds; fails naming `what` otherwise.
pub fn eventually(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
