//! Two pgate replicas sharing one Redis (`shared-store`), against the real PostgreSQL and
//! a real `redis-server` this test starts (and restarts): a single-use token used on
//! replica A is refused on B, an identity budget spent across both holds, and while Redis
//! is down both fail closed (57P03 for a limited token, 54000 for a budgeted result), then
//! recover by themselves once it is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod live;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use live::*;

/// A `redis-server` on `port` without persistence; killed when dropped.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (ci/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn replicas_share_token_uses_and_budgets_and_fail_closed_while_redis_is_down() {
    let e = require_env!();
    let redis_port = free_port();
    let redis = Redis::start(redis_port);
    let store = format!(r#"shared-store "redis://127.0.0.1:{redis_port}/0" timeout="300ms""#);
    let up = upstream_line(e);
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_a, a) = start_pgate(
        &e.dir,
        "replica-a",
        &up,
        &format!("{store}\nmetrics \"{metrics}\""),
    )
    .expect("replica A");
    let (_b, b) = start_pgate(&e.dir, "replica-b", &up, &store).expect("replica B");
    let spec = |sub, groups| TokenSpec {
        sub,
        groups,
        ..TokenSpec::default()
    };
    let single = token(e, spec("backup-on-two@example.com", "single-use"));
    let gina = token(e, spec("gina@example.com", "budgeted"));
    let twenty = "SELECT aid FROM pgbench_accounts ORDER BY aid LIMIT 20";
    let rows_of = |r: Vec<tokio_postgres::SimpleQueryMessage>| {
        r.iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count()
    };
    rt().block_on(async {
        // A single-use token: its session on A is the only one, B included.
        let first = client_as(a, "single-use", &single).await.unwrap();
        first.simple_query("SELECT 1").await.unwrap();
        let err = client_as(b, "single-use", &single).await.unwrap_err();
        let db = err.as_db_error().expect("a server error");
        assert_eq!((db.code().code(), db.severity()), ("28P01", "FATAL"));
        assert!(db.message().contains("already used"), "{}", db.message());

        // A budget of 30 rows a day, spent on A then B: B gets what is left, then 54000.
        let on_a = client_as(a, "budgeted", &gina).await.unwrap();
        assert_eq!(rows_of(on_a.simple_query(twenty).await.unwrap()), 20);
        let on_b = client_as(b, "budgeted", &gina).await.unwrap();
        let err = on_b.simple_query(twenty).await.expect_err("cut on B");
        assert_eq!(code(&err), "54000");
        assert!(
            err.as_db_error()
                .unwrap()
                .message()
                .contains("gina@example.com may receive 30 rows per day"),
            "{err}"
        );
    });
    let opened = audit_event_in(&e.dir.join("audit-replica-a.jsonl"), "open", |v| {
        v["sub"] == "backup-on-two@example.com"
    });
    let reused = audit_event_in(&e.dir.join("audit-replica-b.jsonl"), "token-reused", |v| {
        v["token"]["sub"] == "backup-on-two@example.com"
    });
    assert_eq!(reused["first_conn"], opened["conn"], "B names A's session");
    let cut = audit_event_in(&e.dir.join("audit-replica-b.jsonl"), "statement", |v| {
        v["sub"] == "gina@example.com" && v["cut"]["cap"] == "budget-rows"
    });
    // Within one instance chunk (30/16 rows, so 1) of exact: A leased only what it spent.
    let b_rows = cut["rows"].as_u64().unwrap();
    assert!(
        (9..=10).contains(&b_rows),
        "B sent {b_rows} of the 10 rows left"
    );

    // Redis goes away: limited logins and budgeted results fail closed, on both.
    drop(redis);
    let another = token(e, spec("backup-two@example.com", "single-use"));
    let hank = token(e, spec("hank@example.com", "budgeted"));
    rt().block_on(async {
        let err = client_as(a, "single-use", &another).await.unwrap_err();
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "57P03", "{}", db.message());
        assert!(
            db.message().contains("cannot be reached"),
            "{}",
            db.message()
        );
        let h = client_as(b, "budgeted", &hank).await.unwrap();
        let err = h.simple_query(twenty).await.expect_err("fails closed");
        assert_eq!(code(&err), "54000");
        assert!(
            err.as_db_error()
                .unwrap()
                .message()
                .contains("cannot be reached"),
            "{err}"
        );
        // Roles without limits are not affected.
        let plain = client(e, &good_token(e)).await;
        drop(plain);
    });
    let log_a = || std::fs::read_to_string(e.dir.join("pgate-replica-a.log")).unwrap_or_default();
    assert!(log_a().contains("is unreachable"), "{}", log_a());
    let m = metrics_text(&metrics);
    assert!(m.contains("pgate_shared_store_up 0"), "{m}");
    assert!(!m.contains("pgate_shared_store_errors_total 0\n"), "{m}");

    // Back (empty: no persistence here): both recover without a restart.
    let _redis = Redis::start(redis_port);
    rt().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client_as(a, "single-use", &another).await {
                Ok(c) => {
                    c.simple_query("SELECT 1").await.unwrap();
                    break;
                }
                Err(err) => {
                    assert!(Instant::now() < deadline, "A did not recover: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // The use it just counted holds on B too.
        let err = client_as(b, "single-use", &another).await.unwrap_err();
        assert_eq!(code(&err), "28P01");
    });
    assert!(log_a().contains("is reachable again"), "{}", log_a());
    assert!(metrics_text(&metrics).contains("pgate_shared_store_up 1"));
}

#[test]
fn with_on_unavailable_local_an_instance_counts_alone_while_redis_is_down() {
    let e = require_env!();
    // Nothing listens on this port: the store is down from the start.
    let store = format!(
        r#"shared-store "redis://127.0.0.1:{}/0" timeout="200ms" on-unavailable="local""#,
        free_port()
    );
    let (_c, c) = start_pgate(&e.dir, "replica-local", &upstream_line(e), &store).expect("replica");
    let single = token(
        e,
        TokenSpec {
            sub: "offline-backup@example.com",
            groups: "single-use",
            ..TokenSpec::default()
        },
    );
    rt().block_on(async {
        // The first login finds the store down and counts here; the second is refused here.
        let first = client_as(c, "single-use", &single).await.unwrap();
        first.simple_query("SELECT 1").await.unwrap();
        let err = client_as(c, "single-use", &single).await.unwrap_err();
        assert_eq!(code(&err), "28P01", "{err}");
    });
    let log = std::fs::read_to_string(e.dir.join("pgate-replica-local.log")).unwrap();
    assert!(
        log.contains("counting token uses and budgets on this instance alone"),
        "{log}"
    );
}
