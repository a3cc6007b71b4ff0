//! The SQL classifier (being written; see issue 3).
use crate::facts::Facts;

/// What the caller knows about the session when classifying.
#[derive(Clone, Copy, Debug)]
pub struct ClassifyContext<'a> {
    /// The session's search_path, schemas in order (`$user` already expanded or dropped).
    /// Unqualified relation names resolve to the first schema where `catalog` has the table,
    /// else to the first schema of the path.
    pub search_path: &'a [&'a str],
    /// Optional: tells which relations exist (the data plane passes its decision table).
    pub catalog: Option<&'a dyn CatalogLookup>,
}

/// Lets the classifier resolve unqualified names like PostgreSQL does.
pub trait CatalogLookup {
    fn has_table(&self, schema: &str, name: &str) -> bool;
}

impl std::fmt::Debug for dyn CatalogLookup + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogLookup")
    }
}

impl Default for ClassifyContext<'_> {
    fn default() -> Self {
        ClassifyContext {
            search_path: &["public"],
            catalog: None,
        }
    }
}

/// Classifies `sql` (one or more statements) into `facts` (cleared first).
pub fn classify(_sql: &str, _ctx: &ClassifyContext<'_>, facts: &mut Facts) {
    facts.clear();
}
