//! The session's search path as PostgreSQL keeps it: a setting with transaction semantics.
//!
//! PostgreSQL's rules (docs: SET; `guc.c`'s per-transaction stack), which this model follows
//! and `tests` checks against a real server:
//! - `SET` inside a transaction lasts past `COMMIT`; `ROLLBACK` undoes it.
//! - `SET LOCAL` lasts until the transaction ends, committed or not; outside an explicit
//!   block it lasts until the implicit transaction ends (the rest of a multi-statement
//!   string, or an extended-protocol batch up to Sync).
//! - "A special case is SET followed by SET LOCAL within a single transaction: the SET
//!   LOCAL value will be seen until the end of the transaction, but afterwards (if the
//!   transaction is committed) the SET value will take effect."
//! - `ROLLBACK TO SAVEPOINT` restores the value the savepoint saw; `RELEASE` keeps it.
//! - A multi-statement string (or a batch) outside a block is one implicit transaction:
//!   an error anywhere in it undoes its `SET`s; a `COMMIT` inside it commits what came
//!   before.
//! - `COMMIT` of a failed transaction rolls back.
//!
//! The caller feeds what the server confirmed (a statement's effect once its
//! CommandComplete came, [`PathTracker::unit_end`] at ReadyForQuery), so the path follows
//! the server, not what the client asked for. It never allocates once its frames and
//! strings have grown to the session's working sizes.

/// One saved state: the transaction's start (`name` empty) or a savepoint.
#[derive(Debug, Default)]
struct Frame {
    name: String,
    state: Value,
}

impl Clone for Frame {
    fn clone(&self) -> Self {
        Frame {
            name: self.name.clone(),
            state: self.state.clone(),
        }
    }
    fn clone_from(&mut self, o: &Self) {
        self.name.clone_from(&o.name);
        self.state.clone_from(&o.state);
    }
}

/// What is in effect (`current`) and what a COMMIT keeps (`session`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Value {
    current: Vec<String>,
    current_unknown: bool,
    session: Vec<String>,
    session_unknown: bool,
}

impl Clone for Value {
    fn clone(&self) -> Self {
        let mut v = Value::default();
        v.clone_from(self);
        v
    }
    fn clone_from(&mut self, o: &Self) {
        self.current.clone_from(&o.current);
        self.current_unknown = o.current_unknown;
        self.session.clone_from(&o.session);
        self.session_unknown = o.session_unknown;
    }
}

/// The search path of one session. See the module docs.
#[derive(Debug)]
pub struct PathTracker {
    default: Vec<String>,
    value: Value,
    /// `frames[..depth]` are live; the rest keep their capacity for reuse.
    frames: Vec<Frame>,
    depth: usize,
    /// In an explicit transaction block, and whether it failed.
    in_block: bool,
    failed: bool,
}

impl Clone for PathTracker {
    fn clone(&self) -> Self {
        let mut t = PathTracker::new(&[] as &[&str]);
        t.copy_from(self);
        t
    }
}

impl PathTracker {
    /// A session whose default path (what `RESET` restores) is `default`.
    pub fn new<S: AsRef<str>>(default: &[S]) -> Self {
        let default: Vec<String> = default.iter().map(|s| s.as_ref().to_owned()).collect();
        PathTracker {
            value: Value {
                current: default.clone(),
                current_unknown: false,
                session: default.clone(),
                session_unknown: false,
            },
            default,
            frames: Vec::new(),
            depth: 0,
            in_block: false,
            failed: false,
        }
    }

    /// Becomes a copy of `o`, reusing this tracker's memory.
    pub fn copy_from(&mut self, o: &PathTracker) {
        self.default.clone_from(&o.default);
        self.value.clone_from(&o.value);
        for (i, f) in o.frames[..o.depth].iter().enumerate() {
            match self.frames.get_mut(i) {
                Some(mine) => mine.clone_from(f),
                None => self.frames.push(f.clone()),
            }
        }
        self.depth = o.depth;
        self.in_block = o.in_block;
        self.failed = o.failed;
    }

    /// The path in effect.
    pub fn current(&self) -> &[String] {
        &self.value.current
    }

    /// Whether the path in effect is not known exactly.
    pub fn is_unknown(&self) -> bool {
        self.value.current_unknown
    }

    /// Whether a COMMIT or ROLLBACK now would change the path in effect.
    pub fn tx_dirty(&self) -> bool {
        let v = &self.value;
        let commit_changes = v.current != v.session || v.current_unknown != v.session_unknown;
        let rollback_changes = self.frames[..self.depth]
            .first()
            .is_some_and(|f| f.state != *v);
        commit_changes || rollback_changes
    }

    /// The transaction's start is saved before its first change.
    fn ensure_tx(&mut self) {
        if self.depth == 0 {
            self.push_frame("");
        }
    }

    fn push_frame(&mut self, name: &str) {
        match self.frames.get_mut(self.depth) {
            Some(f) => {
                f.name.clear();
                f.name.push_str(name);
                f.state.clone_from(&self.value);
            }
            None => self.frames.push(Frame {
                name: name.to_owned(),
                state: self.value.clone(),
            }),
        }
        self.depth += 1;
    }

    /// `SET [LOCAL] search_path = …` completed.
    pub fn set<S: AsRef<str>>(&mut self, path: &[S], local: bool) {
        self.ensure_tx();
        let v = &mut self.value;
        assign(&mut v.current, path);
        v.current_unknown = false;
        if !local {
            assign(&mut v.session, path);
            v.session_unknown = false;
        }
    }

    /// `RESET search_path`, `SET search_path TO DEFAULT`, `RESET ALL`, `DISCARD ALL`.
    pub fn reset(&mut self) {
        let default = std::mem::take(&mut self.default);
        self.set(&default, false);
        self.default = default;
    }

    /// A change pgate could not read (`local`: until the transaction ends).
    pub fn set_unknown(&mut self, local: bool) {
        self.ensure_tx();
        self.value.current_unknown = true;
        if !local {
            self.value.session_unknown = true;
        }
    }

    /// `BEGIN` / `START TRANSACTION`.
    pub fn begin(&mut self) {
        self.in_block = true;
    }

    /// `COMMIT` (of a failed transaction: a rollback).
    pub fn commit(&mut self, chain: bool) {
        if self.failed {
            return self.rollback(chain);
        }
        let v = &mut self.value;
        v.current.clone_from(&v.session);
        v.current_unknown = v.session_unknown;
        self.end_tx(chain);
    }

    /// `ROLLBACK` / `ABORT`.
    pub fn rollback(&mut self, chain: bool) {
        if self.depth > 0 {
            let (frames, value) = (&self.frames, &mut self.value);
            value.clone_from(&frames[0].state);
        }
        self.end_tx(chain);
    }

    fn end_tx(&mut self, chain: bool) {
        self.depth = 0;
        self.in_block = chain;
        self.failed = false;
    }

    /// `SAVEPOINT name`.
    pub fn savepoint(&mut self, name: &str) {
        self.ensure_tx();
        self.push_frame(name);
    }

    /// The newest live savepoint called `name`.
    fn find(&self, name: &str) -> Option<usize> {
        (1..self.depth).rev().find(|&i| self.frames[i].name == name)
    }

    /// `RELEASE [SAVEPOINT] name`: it and the savepoints after it go; values stay.
    pub fn release(&mut self, name: &str) {
        if let Some(i) = self.find(name) {
            self.depth = i;
        }
    }

    /// `ROLLBACK TO [SAVEPOINT] name`: the values it saw come back; it stays.
    pub fn rollback_to(&mut self, name: &str) {
        if let Some(i) = self.find(name) {
            let (frames, value) = (&self.frames, &mut self.value);
            value.clone_from(&frames[i].state);
            self.depth = i + 1;
            self.failed = false;
        }
    }

    /// ReadyForQuery with transaction status `status` (`I`, `T`, `E`) ended a unit;
    /// `errored`: an ErrorResponse came in it. Outside a block, the unit's implicit
    /// transaction ends here: committed, or rolled back after an error.
    pub fn unit_end(&mut self, status: u8, errored: bool) {
        match status {
            b'T' => {
                self.in_block = true;
                self.failed = false;
            }
            b'E' => {
                self.in_block = true;
                self.failed = true;
            }
            _ => {
                if errored {
                    self.rollback(false);
                } else {
                    self.commit(false);
                }
            }
        }
    }
}

fn assign<S: AsRef<str>>(dst: &mut Vec<String>, src: &[S]) {
    dst.truncate(src.len());
    for (i, s) in src.iter().enumerate() {
        match dst.get_mut(i) {
            Some(d) => {
                d.clear();
                d.push_str(s.as_ref());
            }
            None => dst.push(s.as_ref().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each case is what PostgreSQL 15 answered for the same statements (psql, `SHOW
    //! search_path` after them).
    use super::*;

    fn t() -> PathTracker {
        PathTracker::new(&["public"])
    }
    fn cur(t: &PathTracker) -> Vec<&str> {
        t.current().iter().map(String::as_str).collect()
    }

    #[test]
    fn set_alone_persists_set_local_alone_does_not() {
        let mut p = t();
        p.set(&["a"], false);
        p.unit_end(b'I', false);
        assert_eq!(cur(&p), ["a"]);
        p.set(&["b"], true);
        assert_eq!(cur(&p), ["b"], "in effect for the rest of its unit");
        p.unit_end(b'I', false);
        assert_eq!(cur(&p), ["a"]);
    }

    #[test]
    fn an_error_later_in_the_string_undoes_its_set() {
        // `SET search_path = a; SELECT 1/0`
        let mut p = t();
        p.set(&["a"], false);
        p.unit_end(b'I', true);
        assert_eq!(cur(&p), ["public"]);
        // `SET search_path = a; COMMIT; SELECT 1/0`: the COMMIT committed it.
        p.set(&["a"], false);
        p.commit(false);
        p.unit_end(b'I', true);
        assert_eq!(cur(&p), ["a"]);
        // `BEGIN; SET search_path = b; COMMIT; SET search_path = c; SELECT 1/0`
        p.begin();
        p.set(&["b"], false);
        p.commit(false);
        p.set(&["c"], false);
        p.unit_end(b'I', true);
        assert_eq!(cur(&p), ["b"]);
    }

    #[test]
    fn rollback_undoes_and_set_local_ends_at_commit() {
        let mut p = t();
        p.begin();
        p.unit_end(b'T', false);
        p.set(&["a"], false);
        p.unit_end(b'T', false);
        p.rollback(false);
        p.unit_end(b'I', false);
        assert_eq!(cur(&p), ["public"]);

        p.begin();
        p.set(&["a"], true);
        assert!(p.tx_dirty());
        p.commit(false);
        p.unit_end(b'I', false);
        assert_eq!(cur(&p), ["public"]);
        assert!(!p.tx_dirty());
    }

    #[test]
    fn savepoints() {
        // BEGIN; SET a; SAVEPOINT s; SET b; ROLLBACK TO SAVEPOINT s → a;
        // SET LOCAL c; COMMIT → a
        let mut p = t();
        p.begin();
        p.set(&["a"], false);
        p.savepoint("s");
        p.set(&["b"], false);
        p.rollback_to("s");
        assert_eq!(cur(&p), ["a"]);
        p.set(&["c"], true);
        p.commit(false);
        assert_eq!(cur(&p), ["a"]);
        // RELEASE keeps the value; a later ROLLBACK still undoes it.
        p.begin();
        p.savepoint("s");
        p.set(&["d"], false);
        p.release("s");
        assert_eq!(cur(&p), ["d"]);
        p.rollback(false);
        assert_eq!(cur(&p), ["a"]);
    }

    #[test]
    fn set_then_set_local_and_the_special_case() {
        // BEGIN; SET LOCAL x; SET y; SET LOCAL z → z; COMMIT → y
        let mut p = t();
        p.begin();
        p.set(&["x"], true);
        p.set(&["y"], false);
        p.set(&["z"], true);
        assert_eq!(cur(&p), ["z"]);
        p.commit(false);
        assert_eq!(cur(&p), ["y"]);
    }

    #[test]
    fn reset_and_failed_transactions() {
        let mut p = t();
        p.set(&["a"], false);
        p.unit_end(b'I', false);
        p.reset();
        p.unit_end(b'I', false);
        assert_eq!(cur(&p), ["public"]);
        // BEGIN; SET a; <error> → E; COMMIT (a rollback) → public
        p.begin();
        p.set(&["a"], false);
        p.unit_end(b'E', true);
        p.commit(false);
        p.unit_end(b'I', false);
        assert_eq!(cur(&p), ["public"]);
    }

    #[test]
    fn unknown_changes_are_tracked_like_values() {
        let mut p = t();
        p.begin();
        p.set_unknown(false);
        assert!(p.is_unknown());
        p.rollback(false);
        assert!(!p.is_unknown());
        p.set_unknown(true);
        p.unit_end(b'I', false);
        assert!(
            !p.is_unknown(),
            "a local change ends with its implicit transaction"
        );
        p.set_unknown(false);
        p.unit_end(b'I', false);
        assert!(p.is_unknown());
        p.reset();
        assert!(!p.is_unknown());
    }

    #[test]
    fn copies_reuse_memory_and_match() {
        let mut a = t();
        a.begin();
        a.set(&["x", "y"], false);
        a.savepoint("s");
        let mut b = t();
        b.copy_from(&a);
        b.rollback(false);
        a.rollback(false);
        assert_eq!(cur(&a), cur(&b));
    }
}
