//! The driver matrix: real client libraries, unmodified, through pgate against the
//! PostgreSQL `ci/test.sh` starts — psycopg 3 and asyncpg (`tests/drivers/python_drivers.py`),
//! node-postgres (`tests/drivers/node_postgres.js`); tokio-postgres is the client of
//! `tests/integration.rs`. `ci/test.sh` installs the drivers from their registries and says
//! where (`PGATE_DRIVERS_PYTHON`, `PGATE_DRIVERS_NODE_PATH`); without them these tests are
//! skipped — except under CI, where that is a failure.
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
