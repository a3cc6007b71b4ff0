//! The driver matrix: real client libraries, unmodified, through pgate against the
//! PostgreSQL `ci/test.sh` starts — psycopg 3 and asyncpg (`tests/drivers/python_drivers.py`),
//! node-postgres (`tests/drivers/node_postgres.js`), pgJDBC (`tests/drivers/PgJdbc.java`),
//! tokio-postgres and sqlx (here), and `pg_dump` / `pg_restore --list`. `ci/test.sh`
//! installs the drivers (Python and Node ones from their registries, pgJDBC from Debian) and
//! says where (`PGATE_DRIVERS_PYTHON`, `PGATE_DRIVERS_NODE_PATH`, `PGATE_DRIVERS_JDBC_JAR`);
//! without them these tests are skipped — except under CI, where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::PathBuf;
use std::process::Command;

mod live;
use live::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{var} not set under CI: run through ci/test.sh"
            );
            eprintln!("skipped: {var} not set (run ci/test.sh)");
            None
        }
    }
}

/// Runs a driver script with the connection settings in its environment.
fn run(e: &Env, mut cmd: Command, name: &str) {
    let out = cmd
        .env("PGATE_HOST", "127.0.0.1")
        .env("PGATE_PORT", e.addr.port().to_string())
        .env("PGATE_DB", DB)
        .env("PGATE_TOKEN", good_token(e))
        .env("PGATE_TAG", format!("drv-{}-{name}", std::process::id()))
        .output()
        .expect("the driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{name}: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

#[test]
fn psycopg3_and_asyncpg() {
    let e = require_env!();
    let Some(python) = tool("PGATE_DRIVERS_PYTHON") else {
        return;
    };
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/drivers/python_drivers.py"));
    run(e, cmd, "python");
}

#[test]
fn node_postgres() {
    let e = require_env!();
    let Some(node_path) = tool("PGATE_DRIVERS_NODE_PATH") else {
        return;
    };
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", node_path)
        .arg(repo().join("tests/drivers/node_postgres.js"));
    run(e, cmd, "node");
}

#[test]
fn pgjdbc() {
    let e = require_env!();
    let Some(jar) = tool("PGATE_DRIVERS_JDBC_JAR") else {
        return;
    };
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(jar)
        .arg(repo().join("tests/drivers/PgJdbc.java"));
    run(e, cmd, "jdbc");
}

/// `pg_dump` of a schema through pgate, for a role allowed to dump it, is the dump
/// PostgreSQL gives its owner directly (apart from the random `\restrict` key); the same
/// for a custom-format dump, compared by `pg_restore --list` (apart from its creation time).
#[test]
fn pg_dump_and_pg_restore_list() {
    let e = require_env!();
    admin_psql(
        &e.socket,
        &e.pg_port,
        DB,
        "DROP SCHEMA IF EXISTS dumpme CASCADE;
         CREATE SCHEMA dumpme;
         CREATE TABLE dumpme.owners (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
         CREATE TABLE dumpme.pets (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             owner int REFERENCES dumpme.owners(id), name text CHECK (name <> ''),
             born date DEFAULT '2020-01-01', tags text[]);
         CREATE INDEX pets_name ON dumpme.pets (lower(name));
         COMMENT ON TABLE dumpme.pets IS 'pets, with ''quotes''';
         CREATE VIEW dumpme.pet_names AS SELECT p.name, o.name AS owner FROM dumpme.pets p JOIN dumpme.owners o ON o.id = p.owner;
         CREATE FUNCTION dumpme.pet_count(int) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM dumpme.pets WHERE owner = $1';
         CREATE TYPE dumpme.mood AS ENUM ('calm', 'busy');
         INSERT INTO dumpme.owners(name) VALUES ('Ada'), ('Bob');
         INSERT INTO dumpme.pets(owner, name, tags) VALUES (1, 'Rex', '{a,b}'), (2, E'Tab\\there', NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    let tok = token(
        e,
        TokenSpec {
            sub: "backup@example.com",
            groups: "dumpers",
            ..Default::default()
        },
    );
    let port = e.addr.port().to_string();
    let dump = |via_pgate: bool, args: &[&str]| -> Vec<u8> {
        let mut cmd = Command::new("pg_dump");
        if via_pgate {
            cmd.args(["-h", "127.0.0.1", "-p", &port, "-U", "dumper"])
                .env("PGPASSWORD", &tok)
                .env("PGSSLMODE", "disable");
        } else {
            cmd.args(["-h", &e.socket, "-p", &e.pg_port, "-U", "postgres"]);
        }
        let out = cmd
            // pg_subscription holds connection strings (pg-credentials): not for dumpers.
            .args(["-d", DB, "-n", "dumpme", "--no-subscriptions"])
            .args(args)
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "pg_dump (via pgate: {via_pgate}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // pg_dump 15.14+ writes `\restrict KEY` / `\unrestrict KEY` with a random key.
    let plain = |b: Vec<u8>| -> String {
        String::from_utf8(b)
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("\\restrict ") || l.starts_with("\\unrestrict ") {
                    l.split(' ').next().unwrap().to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let direct = plain(dump(false, &[]));
    let through = plain(dump(true, &[]));
    assert!(direct.contains("CREATE TABLE dumpme.pets"), "{direct}");
    assert!(direct.contains("COPY dumpme.pets"), "{direct}");
    assert_eq!(
        through, direct,
        "pg_dump through pgate differs from a direct dump"
    );

    let list = |via_pgate: bool| -> String {
        let f = dir.path().join(format!("dump-{via_pgate}.custom"));
        dump(via_pgate, &["-Fc", "-f", f.to_str().unwrap()]);
        let out = Command::new("pg_restore")
            .arg("--list")
            .arg(&f)
            .output()
            .expect("pg_restore runs");
        assert!(out.status.success(), "pg_restore --list failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("; Archive created at "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let direct = list(false);
    assert!(direct.contains("TABLE DATA dumpme pets"), "{direct}");
    assert_eq!(list(true), direct, "pg_restore --list differs");
    // Every statement pg_dump sent is in the audit log, allowed, under the dumper's identity.
    let audit = std::fs::read_to_string(&e.audit).unwrap();
    let lines: Vec<_> = audit
        .lines()
        .filter(|l| l.contains("backup@example.com") && l.contains("\"event\":\"statement\""))
        .collect();
    assert!(lines.len() > 20, "{} audit lines", lines.len());
    let denied: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("\"verdict\":\"deny\""))
        .collect();
    assert!(denied.is_empty(), "pg_dump was refused: {denied:#?}");
    assert!(
        lines.iter().any(|l| l.contains("COPY dumpme.pets")),
        "the data copy is audited"
    );
}

/// tokio-postgres's own checks (prepared statements, pipelining, COPY, cancel,
/// LISTEN/NOTIFY) are in `tests/integration.rs`; here: its transactions around a denial.
#[tokio::test]
async fn tokio_postgres_transactions_around_a_denial() {
    let e = require_env!();
    let tag = format!("drv-{}-tokio", std::process::id());
    let mut c = client(e, &good_token(e)).await.expect("connect");
    let n = |rows: Vec<tokio_postgres::Row>| rows[0].get::<_, i64>(0);
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into events(payload) values ($1)", &[&tag])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let q = "select count(*) from events where payload = $1";
    assert_eq!(n(c.query(q, &[&tag]).await.unwrap()), 0, "rolled back");
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into events(payload) values ($1)", &[&tag])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n(c.query(q, &[&tag]).await.unwrap()), 1, "committed");
    // A denial fails the transaction: 25P02 after it, and its COMMIT commits nothing.
    let failed = format!("{tag}-failed");
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into events(payload) values ($1)", &[&failed])
        .await
        .unwrap();
    let err = tx
        .query("select ssn from customers", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&err), "42501");
    let err = tx.query("select 1", &[]).await.unwrap_err();
    assert_eq!(code(&err), "25P02");
    let _ = tx.commit().await;
    assert_eq!(
        n(c.query(q, &[&failed]).await.unwrap()),
        0,
        "nothing committed"
    );
    assert_eq!(n(c.query("select 3::int8", &[]).await.unwrap()), 3);
}

/// sqlx (without its macros): cached prepared statements, transactions, COPY in and out,
/// a denied statement followed by a normal one and inside a transaction, LISTEN/NOTIFY
/// (`PgListener`). sqlx has no CancelRequest (dropping a query future drains it instead),
/// so its cancel is not tested.
#[tokio::test]
async fn sqlx() {
    use futures_util::TryStreamExt;
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgSslMode};
    use sqlx::{Connection, Row};
    let e = require_env!();
    let tag = format!("drv-{}-sqlx", std::process::id());
    let opts = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(e.addr.port())
        .username("analyst")
        .password(&good_token(e))
        .database(DB)
        .ssl_mode(PgSslMode::Disable);
    let mut c = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("connect");
    let state = |r: Result<_, sqlx::Error>| match r {
        Err(sqlx::Error::Database(d)) => d.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(other) => format!("{other}"),
        Ok(_) => "none".to_owned(),
    };
    for id in [1i32, 2, 1] {
        let name: String = sqlx::query("select name from customers where id = $1")
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
        assert!(!name.is_empty());
    }
    let mut tx = c.begin().await.unwrap();
    sqlx_insert(&mut tx, &tag).await;
    tx.rollback().await.unwrap();
    assert_eq!(sqlx_count(&mut c, &tag).await, 0, "rolled back");
    let mut tx = c.begin().await.unwrap();
    sqlx_insert(&mut tx, &tag).await;
    tx.commit().await.unwrap();
    assert_eq!(sqlx_count(&mut c, &tag).await, 1, "committed");
    // COPY in and out.
    let copied = format!("{tag}-copy");
    let mut copy = c
        .copy_in_raw("copy events(payload) from stdin")
        .await
        .unwrap();
    copy.send(format!("{copied}\n{copied}\n{copied}\n").into_bytes())
        .await
        .unwrap();
    assert_eq!(copy.finish().await.unwrap(), 3, "copy in");
    let chunks: Vec<_> = c
        .copy_out_raw(&format!(
            "copy (select payload from events where payload = '{copied}') to stdout"
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let out: Vec<u8> = chunks.concat();
    assert_eq!(out, format!("{copied}\n{copied}\n{copied}\n").into_bytes());
    // A denial, then a normal statement; inside a transaction it fails the transaction.
    let r = sqlx::query("select ssn from customers")
        .fetch_all(&mut c)
        .await;
    assert_eq!(state(r), "42501");
    let one: i32 = sqlx::query("select 1")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
    let failed = format!("{tag}-failed");
    let mut tx = c.begin().await.unwrap();
    sqlx_insert(&mut tx, &failed).await;
    let r = sqlx::query("select ssn from customers")
        .fetch_all(&mut *tx)
        .await;
    assert_eq!(state(r), "42501");
    let r = sqlx::query("select 1").fetch_all(&mut *tx).await;
    assert_eq!(state(r), "25P02");
    let _ = tx.commit().await;
    assert_eq!(
        sqlx_count(&mut c, &failed).await,
        0,
        "the failed transaction committed nothing"
    );
    // LISTEN / NOTIFY.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .unwrap();
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("pgate_drivers_s").await.unwrap();
    sqlx::query("notify pgate_drivers_s, 'yo'")
        .execute(&pool)
        .await
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap();
    assert_eq!(got.payload(), "yo");
    c.close().await.unwrap();
}

async fn sqlx_insert(c: &mut sqlx::PgConnection, payload: &str) {
    sqlx::query("insert into events(payload) values ($1)")
        .bind(payload)
        .execute(c)
        .await
        .unwrap();
}

async fn sqlx_count(c: &mut sqlx::PgConnection, payload: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("select count(*) from events where payload = $1")
        .bind(payload)
        .fetch_one(c)
        .await
        .unwrap()
        .get(0)
}
