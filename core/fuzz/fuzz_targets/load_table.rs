//! Any bytes given to the decision-table loader are rejected or accepted, never a panic;
//! a table the loader accepts decides statements without panicking (a corrupt table that
//! passes validation must not take the data plane down at the first query).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgate_core::decide::{SessionState, decide_sql};
use pgate_core::facts::Facts;
use pgate_core::table::{RoleId, Table};

const STATEMENTS: &[&str] = &[
    "SELECT id, email FROM public.customers WHERE id = 1",
    "SELECT * FROM orders o NATURAL JOIN order_items i",
    "UPDATE t SET a = 1 RETURNING *",
    "SELECT my_func(1), lower('x') FROM pg_class",
    "COPY customers TO STDOUT",
    "BEGIN; SET search_path = a, b; SELECT x FROM t AS y(x); COMMIT",
];

fuzz_target!(|data: &[u8]| {
    let Ok(table) = Table::parse(data) else {
        return;
    };
    let mut facts = Facts::default();
    let path = ["public"];
    let session = SessionState::with_path(&path);
    for role in 0..table.role_count().min(4) {
        for sql in STATEMENTS {
            let _ = decide_sql(&table, RoleId(role), sql, &session, &mut facts);
        }
    }
});
