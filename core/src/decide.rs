//! The one decision path: how a SQL string is classified and decided in a session's
//! state. `pgate-compile explain` and `test` and the data plane all call this, so they
//! cannot build the classification context differently (the catalog, the search path,
//! the session's transaction state).
//!
//! What it must never do: allocate, or decide with less than the session knows (no
//! catalog, a truncated path).

use crate::facts::Facts;
use crate::sql::{CatalogLookup, ClassifyContext, classify};
use crate::table::{RoleId, Table, Verdict};

/// The decision table's catalog is what the classifier resolves unqualified names with.
impl CatalogLookup for Table<'_> {
    fn has_table(&self, schema: &str, name: &str) -> bool {
        self.table_id(schema, name).is_some()
    }
    fn has_function(&self, schema: &str, name: &str) -> bool {
        self.function_id(schema, name).is_some()
    }
    fn function_overloads(&self, schema: &str, name: &str) -> Option<&str> {
        self.function_overloads(self.function_id(schema, name)?)
    }
}

/// What a session knows that changes how its SQL is read.
#[derive(Clone, Copy, Debug)]
pub struct SessionState<'a> {
    /// The search path in force, in order (`$user` expanded or dropped).
    pub search_path: &'a [&'a str],
    /// The open transaction holds path changes a COMMIT or ROLLBACK would undo.
    pub tx_path_dirty: bool,
    /// The path is not known exactly (see `ClassifyContext::path_unknown`).
    pub path_unknown: bool,
}

impl<'a> SessionState<'a> {
    /// A fresh session with this path (`explain`, `test`).
    pub fn with_path(search_path: &'a [&'a str]) -> Self {
        SessionState {
            search_path,
            tx_path_dirty: false,
            path_unknown: false,
        }
    }
}

/// Classifies `sql` into `facts` as the data plane does.
pub fn classify_in(table: &Table<'_>, sql: &str, session: &SessionState<'_>, facts: &mut Facts) {
    let ctx = ClassifyContext {
        search_path: session.search_path,
        catalog: Some(table as &dyn CatalogLookup),
        tx_path_dirty: session.tx_path_dirty,
        path_unknown: session.path_unknown,
    };
    classify(sql, &ctx, facts);
}

/// Classifies `sql` and decides every statement of it for `role`.
pub fn decide_sql(
    table: &Table<'_>,
    role: RoleId,
    sql: &str,
    session: &SessionState<'_>,
    facts: &mut Facts,
) -> Verdict {
    classify_in(table, sql, session, facts);
    table.decide_all(role, facts)
}
