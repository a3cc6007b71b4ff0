//! Identity budgets (`budget rows= bytes= per=`) through the sans-IO session, with one
//! store shared by several sessions of the same identity: what one session received counts
//! for the next, a result past the budget is cut with 54000 naming the budget and when it
//! resets, an unspent lease comes back when its session ends, and a new window starts
//! afresh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use std::sync::Arc;

use common::*;
use pgate::budgets::{BudgetStore, LocalBudgets};
use pgate::session::Action;

fn session(store: &Arc<LocalBudgets>, seq: u64, table: &[u8], rows: usize) -> Sim {
    let mut s = Sim::at(
        pgate::session::SessionConfig {
            allow_plaintext_auth: true,
            upstream_user: "pgate_upstream".into(),
            ..Default::default()
        },
        "10.0.0.1:4000",
        seq,
    );
    s.table = table.to_vec();
    let store: Arc<dyn BudgetStore> = store.clone();
    s.session.set_budget_store(store);
    s.server.rows = rows;
    assert_eq!(s.connect().last().map(|m| m.0), Some(b'Z'));
    s
}

/// Runs a query; returns the DataRows that reached the client and the error, if cut.
fn select(s: &mut Sim) -> (usize, Option<(String, String)>) {
    let mut r = messages(&s.client(&query("select id from orders")));
    if s.actions.contains(&Action::CancelUpstream) {
        s.actions.retain(|a| *a != Action::CancelUpstream);
        s.session.upstream_cancel_done(true);
        r.extend(messages(&s.pump()));
    }
    let rows = r.iter().filter(|m| m.0 == b'D').count();
    let err = r
        .iter()
        .find(|m| m.0 == b'E')
        .map(|m| (error_field(&m.1, b'C'), error_field(&m.1, b'M')));
    (rows, err)
}

#[test]
fn a_budget_counts_across_sessions_and_cuts_with_54000_naming_it() {
    let store = Arc::new(LocalBudgets::default());
    let table = policy_budget(Some(5), None);
    let mut a = session(&store, 1, &table, 3);
    assert_eq!(select(&mut a), (3, None));
    let mut b = session(&store, 2, &table, 3);
    let (rows, err) = select(&mut b);
    assert_eq!(rows, 2, "two rows were left of five");
    let (code, msg) = err.expect("cut");
    assert_eq!(code, "54000");
    assert!(
        msg.contains("budget spent")
            && msg.contains("alice@example.com may receive 5 rows per day")
            && msg.contains("rule at roles/analyst.kdl:9")
            && msg.contains("until 1970-01-02T00:00:00Z"),
        "{msg}"
    );
    let cut = audit_lines(&mut b)
        .into_iter()
        .find(|l| l["event"] == "statement" && l.get("cut").is_some())
        .expect("the cut statement's line");
    assert_eq!(cut["cut"]["cap"], "budget-rows");
    assert_eq!(cut["cut"]["limit"], 5);
    assert_eq!(cut["rows"], 2, "what the cut statement sent");
    // Spent for the first session too, on its next statement.
    let (rows, err) = select(&mut a);
    assert_eq!((rows, err.map(|e| e.0)), (0, Some("54000".into())));
    // A statement without rows is not affected.
    let r = messages(&a.client(&query("begin")));
    assert!(r.iter().all(|m| m.0 != b'E'), "{r:?}");
}

#[test]
fn an_unspent_lease_comes_back_and_a_new_window_starts_afresh() {
    let store = Arc::new(LocalBudgets::default());
    // 64 rows a day: a lease asks for 2 at a time.
    let table = policy_budget(Some(64), None);
    let mut a = session(&store, 1, &table, 1);
    assert_eq!(select(&mut a), (1, None));
    // `a` holds one row it has not spent: `b` gets the other 62.
    let mut b = session(&store, 2, &table, 63);
    let (rows, err) = select(&mut b);
    assert_eq!(rows, 62);
    assert_eq!(err.unwrap().0, "54000");
    // `a` ends: its unspent row goes back.
    a.session.client_closed();
    drop(a);
    let mut c = session(&store, 3, &table, 2);
    let (rows, err) = select(&mut c);
    assert_eq!((rows, err.map(|e| e.0)), (1, Some("54000".into())));
    // The next day (UTC), the budget is whole again.
    let mut d = session(&store, 4, &table, 10);
    d.t.unix_ms += 86_400_000;
    assert_eq!(select(&mut d), (10, None));
}

#[test]
fn a_byte_budget_cuts_the_message_that_does_not_fit() {
    let store = Arc::new(LocalBudgets::default());
    // A DataRow of the fake server is tens of bytes: 100 bytes cover a few, not ten.
    let table = policy_budget(None, Some(100));
    let mut a = session(&store, 1, &table, 10);
    let (rows, err) = select(&mut a);
    assert!(rows > 0 && rows < 10, "{rows}");
    let (code, msg) = err.unwrap();
    assert_eq!(code, "54000");
    assert!(msg.contains("may receive 100 bytes per day"), "{msg}");
}
