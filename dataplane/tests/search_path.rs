//! The search path follows PostgreSQL's transaction semantics through the live proxy.
//! PostgreSQL is the oracle: each script first runs straight against the server, as its
//! superuser, to show which schema the session ends up in; then through pgate as a role
//! allowed only `compat.*`, where `SELECT * FROM hidden` (a table of schema `other`) must
//! be refused whenever the server would read `other.hidden`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod live;
use live::*;

fn compat_token(e: &Env) -> String {
    token(
        e,
        TokenSpec {
            sub: "compat@example.com",
            groups: "compat",
            ..TokenSpec::default()
        },
    )
}

/// Runs `steps` (each one simple Query; errors are part of the script) on `c`.
async fn run_steps(c: &tokio_postgres::Client, steps: &[&str]) {
    for s in steps {
        let _ = c.simple_query(s).await;
    }
}

async fn show_path(c: &tokio_postgres::Client) -> String {
    let rows = c.simple_query("SHOW search_path").await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

/// Scripts after which PostgreSQL's path is `other` while a tracker that ignores
/// transactions (or takes a Parse for an Execute) would say `compat`.
const LEAKS: &[(&str, &[&str])] = &[
    (
        "SET then ROLLBACK",
        &["BEGIN", "SET search_path = compat", "ROLLBACK"],
    ),
    (
        "SET LOCAL then COMMIT",
        &["BEGIN", "SET LOCAL search_path = compat", "COMMIT"],
    ),
    (
        "ROLLBACK TO SAVEPOINT",
        &[
            "BEGIN",
            "SAVEPOINT s",
            "SET search_path = compat",
            "ROLLBACK TO SAVEPOINT s",
            "COMMIT",
        ],
    ),
    (
        "SET then a failing statement in one string",
        &["SET search_path = compat; SELECT 1/0"],
    ),
    (
        "SET LOCAL outside a transaction",
        &["SET LOCAL search_path = compat"],
    ),
    (
        "a failed transaction's COMMIT",
        &["BEGIN", "SET search_path = compat", "SELECT 1/0", "COMMIT"],
    ),
];

#[test]
fn search_path_changes_count_only_as_postgresql_keeps_them() {
    let e = require_env!();
    let t = compat_token(e);
    rt().block_on(async {
        for (what, steps) in LEAKS {
            // The oracle: where PostgreSQL's session ends up.
            let d = direct().await;
            run_steps(&d, &["SET search_path = other"]).await;
            run_steps(&d, steps).await;
            assert_eq!(show_path(&d).await, "other", "{what}: the scenario itself");

            let c = client_as(e.addr, "compat", &t).await.unwrap();
            run_steps(&c, &["SET search_path = other"]).await;
            run_steps(&c, steps).await;
            let r = c.simple_query("SELECT * FROM hidden").await;
            let err = r.expect_err(what);
            assert_eq!(code(&err), "42501", "{what}: {err:?}");
            // The session goes on, and its path is PostgreSQL's.
            assert_eq!(show_path(&c).await, "other", "{what}");
        }
    });
}

#[test]
fn a_parse_of_set_without_execute_changes_nothing() {
    let e = require_env!();
    let t = compat_token(e);
    rt().block_on(async {
        let c = client_as(e.addr, "compat", &t).await.unwrap();
        run_steps(&c, &["SET search_path = other"]).await;
        // tokio-postgres' prepare is Parse + Describe + Sync: the SET never runs.
        c.prepare("SET search_path = compat").await.unwrap();
        assert_eq!(show_path(&c).await, "other");
        let err = c
            .simple_query("SELECT * FROM hidden")
            .await
            .expect_err("denied");
        assert_eq!(code(&err), "42501", "{err:?}");
        // Executed, it counts (extended protocol, its CommandComplete).
        let st = c.prepare("SET search_path = compat").await.unwrap();
        c.execute(&st, &[]).await.unwrap();
        let rows = c.simple_query("SELECT v FROM visible").await.unwrap();
        assert!(
            rows.iter().any(|m| matches!(m,
                tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("compat-row"))),
            "{rows:?}"
        );
    });
}

#[test]
fn committed_and_pipelined_changes_are_followed() {
    let e = require_env!();
    let t = compat_token(e);
    rt().block_on(async {
        let c = client_as(e.addr, "compat", &t).await.unwrap();
        // A committed change in a transaction, then a RELEASE that keeps it.
        run_steps(
            &c,
            &[
                "SET search_path = other",
                "BEGIN",
                "SAVEPOINT a",
                "SET search_path = compat",
                "RELEASE SAVEPOINT a",
                "COMMIT",
            ],
        )
        .await;
        assert_eq!(show_path(&c).await, "compat");
        let rows = c.simple_query("SELECT v FROM visible").await.unwrap();
        assert!(
            rows.iter().any(|m| matches!(m,
                tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("compat-row"))),
            "{rows:?}"
        );
        // Pipelined behind a string whose SET the server rolls back (its second statement
        // fails): the SELECT is decided only once the server has answered, under `other`.
        run_steps(&c, &["SET search_path = other"]).await;
        let (set, sel) = tokio::join!(
            c.simple_query("SET search_path = compat; SELECT 1/0"),
            c.simple_query("SELECT * FROM hidden")
        );
        assert!(set.is_err());
        assert_eq!(code(&sel.expect_err("denied")), "42501");
        assert_eq!(show_path(&c).await, "other");
    });
}

#[test]
fn a_prepared_statement_is_decided_again_under_a_changed_path() {
    // PostgreSQL re-parses a prepared statement when the search path changed since it was
    // prepared: `twin` is `compat.twin` at PREPARE and `other.twin` at the later EXECUTE.
    let e = require_env!();
    let t = compat_token(e);
    rt().block_on(async {
        // The oracle: the server reads the other schema's row after the SET.
        let d = direct().await;
        run_steps(
            &d,
            &[
                "SET search_path = compat",
                "PREPARE p AS SELECT v FROM twin",
            ],
        )
        .await;
        run_steps(&d, &["SET search_path = other"]).await;
        let rows = d.simple_query("EXECUTE p").await.unwrap();
        assert!(
            format!("{rows:?}").contains("other-twin-secret"),
            "{rows:?}"
        );

        let c = client_as(e.addr, "compat", &t).await.unwrap();
        run_steps(
            &c,
            &[
                "SET search_path = compat",
                "PREPARE p AS SELECT v FROM twin",
            ],
        )
        .await;
        let rows = c.simple_query("EXECUTE p").await.unwrap();
        assert!(format!("{rows:?}").contains("compat-twin"), "{rows:?}");
        // Protocol level: a named statement, bound after the path changed.
        let st = c.prepare("SELECT v FROM twin").await.unwrap();
        run_steps(&c, &["SET search_path = other"]).await;
        let err = c.simple_query("EXECUTE p").await.expect_err("denied");
        assert_eq!(code(&err), "42501", "{err:?}");
        let err = c.query(&st, &[]).await.expect_err("denied");
        assert_eq!(code(&err), "42501", "{err:?}");
        // In one string, after a SET that precedes it.
        let err = c
            .simple_query("SET search_path = compat; SET search_path = other; EXECUTE p")
            .await
            .expect_err("denied");
        assert_eq!(code(&err), "42501", "{err:?}");
        // Back under compat, both run again.
        run_steps(&c, &["SET search_path = compat"]).await;
        let rows = c.simple_query("EXECUTE p").await.unwrap();
        assert!(format!("{rows:?}").contains("compat-twin"), "{rows:?}");
        let rows = c.query(&st, &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, &str>(0), "compat-twin");
    });
}

/// The first row's first value of a simple query's answer.
fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    })
}

#[test]
fn names_resolve_through_a_path_of_several_schemas_as_postgresql_resolves_them() {
    let e = require_env!();
    let t = compat_token(e);
    rt().block_on(async {
        // The oracle: with `compat, other`, PostgreSQL reads `other.hidden` (there is no
        // `compat.hidden`), `compat.visible`, and calls `other.leak()`.
        let d = direct().await;
        run_steps(&d, &["SET search_path = compat, other"]).await;
        let r = d.simple_query("SELECT * FROM hidden").await.unwrap();
        assert_eq!(first_value(&r).as_deref(), Some("other-secret"));
        let r = d.simple_query("SELECT v FROM visible").await.unwrap();
        assert_eq!(first_value(&r).as_deref(), Some("compat-row"));
        let r = d.simple_query("SELECT leak()").await.unwrap();
        assert_eq!(first_value(&r).as_deref(), Some("other-secret"));

        let c = client_as(e.addr, "compat", &t).await.unwrap();
        run_steps(&c, &["SET search_path = compat, other"]).await;
        // `hidden` is declared nowhere: it may be `compat.hidden` or `other.hidden`, and
        // the role may read only the first.
        let err = c
            .simple_query("SELECT * FROM hidden")
            .await
            .expect_err("hidden");
        assert_eq!(code(&err), "42501", "{err:?}");
        assert!(format!("{err:?}").contains("other.hidden"), "{err:?}");
        // `compat.visible` is declared: the name resolves there, as the server does.
        let r = c.simple_query("SELECT v FROM visible").await.unwrap();
        assert_eq!(first_value(&r).as_deref(), Some("compat-row"));
        // `leak` is not a built-in: it is a function of a path schema, never pg_catalog's
        // (which the role may call).
        for sql in ["SELECT leak()", "SELECT * FROM leak()"] {
            let err = c.simple_query(sql).await.expect_err(sql);
            assert_eq!(code(&err), "42501", "{sql}: {err:?}");
            assert!(format!("{err:?}").contains("compat.leak"), "{err:?}");
        }
        // A built-in stays allowed.
        let r = c.simple_query("SELECT lower('X')").await.unwrap();
        assert_eq!(first_value(&r).as_deref(), Some("x"));
    });
}
