//! Objects a session creates that outlive one message: protocol-level prepared statements
//! and portals, SQL-level `PREPARE`d statements, cursors and LISTEN channels. pgate tracks
//! them to decide their later use (again, after a table swap) and to cap them.
//!
//! A record changes when PostgreSQL confirms the change, never when pgate forwards it:
//! PostgreSQL skips the rest of an extended batch after an error and rejects a duplicate
//! name, so a record written at forwarding time could describe a statement the server does
//! not hold — and a later use would be decided on the wrong text. Parse and Close wait for
//! ParseComplete / CloseComplete; SQL-level effects wait for their statement's
//! CommandComplete. Until then, later messages are decided against the pending change
//! (the server runs them after it, in order).
//!
//! What this module must never do: decide the use of an object on a text other than the
//! one the server holds under that name.

use pgate_core::facts::{PathEffect, StatementFlags};
use pgate_core::table::{Decision, DenyReason, Table, Verdict};

use super::decided::Decided;
use super::{Session, sqlstate};

/// What pgate knows about a prepared statement (protocol level).
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// Whether the current table allows it (false after a re-decision refused it).
    pub allowed: bool,
    /// Index into `summaries` (this statement's own slot).
    pub summary: usize,
    pub decided: Decided,
    /// Changes with every Parse: a portal bound from an earlier version cannot be decided
    /// again from this one.
    pub version: u64,
    /// What executing it does to SQL-level objects (a Parse of `DECLARE …`, say).
    pub effect: Option<Box<SqlEffect>>,
    /// What executing it does to the search path, and the effect's names (the path set,
    /// or the savepoint): applied when an Execute of it completes, not at Parse.
    pub path_effect: PathEffect,
    pub path_args: Vec<String>,
}

/// A portal bound from an allowed statement.
#[derive(Debug, Default)]
pub(super) struct Portal {
    pub summary: usize,
    /// The statement it was bound from, and that statement's version then.
    pub statement: String,
    pub version: u64,
    pub table_gen: u32,
    /// The unit of its Bind: portals end with their transaction.
    pub unit: u64,
    pub effect: Option<Box<SqlEffect>>,
    /// Its statement's `path_effect`.
    pub path_effect: PathEffect,
    /// Unique in the session (a new one at every Bind), and what its result sent the
    /// client so far: a result fetched in pieces (PortalSuspended) is one result for the
    /// caps.
    pub id: u64,
    pub sent: (u64, u64),
}

/// A SQL-level cursor (`DECLARE`) pgate allowed and the server opened.
#[derive(Debug)]
pub(super) struct Cursor {
    pub decided: Decided,
    pub hold: bool,
    pub unit: u64,
}

/// What a statement does to SQL-level objects once it completes.
#[derive(Debug, Clone)]
pub(super) enum SqlEffect {
    Prepare(String, Decided),
    /// `None`: DEALLOCATE ALL.
    Deallocate(Option<String>),
    Declare {
        name: String,
        decided: Decided,
        hold: bool,
    },
    /// `None`: CLOSE ALL.
    CloseCursor(Option<String>),
    Listen(String),
    /// `None`: UNLISTEN *.
    Unlisten(Option<String>),
    DiscardAll,
    /// `FETCH`/`MOVE`, or an Execute of a cursor's portal: a piece of a cursor's result,
    /// counted against the caps with the other pieces (`results`). Changes nothing here.
    Fetch,
    /// `COPY table TO STDOUT` by a role with masks: what the COPY data's rewriter needs
    /// (`masking`), or why pgate cannot read its options. Changes nothing here.
    CopyOut(Result<Box<super::masking::CopySpec>, &'static str>),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConfirmKind {
    #[default]
    Parse,
    CloseStatement,
    ClosePortal,
}

/// A Parse or Close forwarded and not yet confirmed. Kept in a pool: the unnamed statement
/// is parsed for every query by many drivers, and its records are reused, not reallocated.
#[derive(Debug, Default)]
pub(super) struct Confirm {
    pub unit: u64,
    pub what: ConfirmKind,
    pub name: String,
    pub stmt: Prepared,
}

/// What an Execute of a known portal runs: its summary slot and its SQL-level effect.
/// What an Execute runs: its audit summary slot, its SQL effect, and its portal's id and
/// what that portal's result sent before (0 and nothing for a cursor's portal).
pub(super) struct PortalRun {
    pub summary: usize,
    pub effect: Option<Box<SqlEffect>>,
    pub path_effect: PathEffect,
    pub portal: u64,
    pub carried: (u64, u64),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prepared,
    Cursor,
}

impl Session {
    // ---- summary slots: referenced by their statement, portals and pending lines ----

    pub(super) fn slot_ref(&mut self, i: usize) {
        if let Some(r) = self.ready.summary_refs.get_mut(i) {
            *r += 1;
        }
    }

    pub(super) fn slot_unref(&mut self, i: usize) {
        if i == 0 {
            return;
        }
        if let Some(r) = self.ready.summary_refs.get_mut(i) {
            debug_assert!(*r > 0, "summary slot {i} released more often than taken");
            if *r == 1 {
                self.ready.free_summaries.push(i);
            }
            *r = r.saturating_sub(1);
        }
    }

    // ---- protocol-level statements ----

    /// The statement a later message naming `name` uses: the newest pending Parse or Close
    /// of that name, else the confirmed one.
    pub(super) fn find_statement(&self, name: &str) -> Option<&Prepared> {
        for c in self.ready.confirms.iter().rev() {
            if c.name == name {
                match c.what {
                    ConfirmKind::Parse => return Some(&c.stmt),
                    ConfirmKind::CloseStatement => return None,
                    ConfirmKind::ClosePortal => {}
                }
            }
        }
        self.ready.statements.get(name)
    }

    fn push_confirm(&mut self, what: ConfirmKind, name: &str) -> &mut Confirm {
        let mut c = self.ready.confirm_pool.pop().unwrap_or_default();
        c.unit = self.ready.unit_seq;
        c.what = what;
        c.name.clear();
        c.name.push_str(name);
        self.ready.confirms.push_back(c);
        let last = self.ready.confirms.len() - 1;
        &mut self.ready.confirms[last]
    }

    pub(super) fn on_parse(&mut self, name: &str, sql: &str, raw: &[u8], table: &Table<'_>) {
        // "If successfully created, a named prepared-statement object lasts till the end of
        // the current session, unless explicitly destroyed … Named prepared statements must
        // be explicitly closed before they can be redefined by another Parse message."
        // SQL PREPARE shares the namespace.
        if !name.is_empty()
            && (self.find_statement(name).is_some() || self.ready.sql_prepared.contains_key(name))
        {
            let msg = format!("prepared statement \"{name}\" already exists");
            self.refuse_parse(name, sqlstate::DUPLICATE_PREPARED_STATEMENT, &msg);
            return;
        }
        if self.ready.statements.len() + self.ready.confirms.len()
            >= self.cfg.max_prepared_statements
        {
            self.refuse_parse(
                name,
                sqlstate::TOO_MANY,
                "pgate: too many prepared statements in this session; close some first",
            );
            return;
        }
        let verdict = self.decide_sql(sql, table);
        let limit = if verdict.is_allow() {
            self.limit_exceeded()
        } else {
            None
        };
        if let Some(msg) = limit {
            self.audit_denied(&verdict, table, msg, sql);
            self.refuse_parse(name, sqlstate::TOO_MANY, msg);
            return;
        }
        if !verdict.is_allow() {
            // Nothing is recorded: the server never sees this Parse, and keeps whatever
            // it held under the name.
            let msg = self.denial_text(&verdict, table);
            self.audit_denied(&verdict, table, &msg, sql);
            self.refuse_parse(name, sqlstate::INSUFFICIENT_PRIVILEGE, &msg);
            return;
        }
        let effect = self.sql_effect(0, sql, table);
        let mut args = std::mem::take(&mut self.ready.path_args_scratch);
        let path_effect = self.path_effect_of(0, &mut args);
        let slot = self.new_summary();
        self.slot_ref(slot);
        // The summary names the path the statement was decided under.
        self.write_summary(slot, 0, &verdict, table, sql);
        self.ready.statement_versions += 1;
        let (version, tgen) = (self.ready.statement_versions, self.table_gen);
        let path = std::mem::take(&mut self.ready.search_path);
        let c = self.push_confirm(ConfirmKind::Parse, name);
        c.stmt.allowed = true;
        c.stmt.summary = slot;
        c.stmt.decided.set(sql, &path, tgen);
        c.stmt.version = version;
        c.stmt.effect = effect;
        c.stmt.path_effect = path_effect;
        std::mem::swap(&mut c.stmt.path_args, &mut args);
        self.ready.path_args_scratch = args;
        self.ready.search_path = path;
        self.forward_in_batch(raw);
    }

    /// Close of a statement (pending until CloseComplete) or of a portal. Portal records
    /// change as Bind changes them, when forwarded (a portal lives only within its
    /// transaction, which an error aborts); the FIFO still gets a placeholder, since
    /// CloseComplete answers both kinds in order.
    pub(super) fn on_close(&mut self, kind: u8, name: &str, raw: &[u8]) {
        let what = if kind == b'S' {
            ConfirmKind::CloseStatement
        } else {
            self.forget_portal(name);
            ConfirmKind::ClosePortal
        };
        self.push_confirm(what, name);
        self.forward_in_batch(raw);
    }

    /// The server dropped the unnamed statement (a failed Parse of it).
    pub(super) fn forget_unnamed_statement(&mut self) {
        if let Some(old) = self.ready.statements.remove("") {
            self.slot_unref(old.summary);
        }
    }

    fn forget_portal(&mut self, name: &str) {
        if name.is_empty() {
            self.close_unnamed_portal();
        } else {
            if let Some(p) = self.ready.portals.remove(name) {
                self.slot_unref(p.summary);
            }
            // A SQL cursor is a portal too.
            self.ready.cursors.remove(name);
        }
    }

    fn forget_all_portals(&mut self) {
        self.close_unnamed_portal();
        let slots: Vec<usize> = self.ready.portals.drain().map(|(_, p)| p.summary).collect();
        for s in slots {
            self.slot_unref(s);
        }
        self.ready.cursors.clear();
    }

    /// ParseComplete or CloseComplete: the oldest pending change took effect. Answers
    /// come in order; one that matches nothing pending means pgate's view of the server
    /// is lost, and the session ends rather than decide on it.
    pub(super) fn confirmed(&mut self, parse: bool) {
        let matches = self
            .ready
            .confirms
            .front()
            .is_some_and(|c| (c.what == ConfirmKind::Parse) == parse);
        if !matches {
            self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: the database confirmed a Parse or Close pgate did not send",
            );
            return;
        }
        let Some(mut c) = self.ready.confirms.pop_front() else {
            return;
        };
        match c.what {
            ConfirmKind::Parse => {
                let stmt = std::mem::take(&mut c.stmt);
                match self.ready.statements.get_mut(&c.name) {
                    Some(old) => {
                        let old = std::mem::replace(old, stmt);
                        self.slot_unref(old.summary);
                        c.stmt = old;
                    }
                    None => {
                        self.ready.statements.insert(c.name.clone(), stmt);
                    }
                }
            }
            ConfirmKind::CloseStatement => {
                if let Some(old) = self.ready.statements.remove(&c.name) {
                    self.slot_unref(old.summary);
                }
            }
            // Applied when forwarded.
            ConfirmKind::ClosePortal => {}
        }
        self.ready.confirm_pool.push(c);
    }

    /// At ReadyForQuery: pending changes of answered units that were never confirmed were
    /// skipped by the server (an error earlier in their batch).
    pub(super) fn drop_unconfirmed(&mut self, done_unit: u64) {
        while self
            .ready
            .confirms
            .front()
            .is_some_and(|c| c.unit < done_unit)
        {
            let Some(c) = self.ready.confirms.pop_front() else {
                break;
            };
            if c.what == ConfirmKind::Parse {
                self.slot_unref(c.stmt.summary);
            }
            self.ready.confirm_pool.push(c);
        }
    }

    /// A statement named by Bind or Describe: only statements pgate allowed, decided
    /// again first if an earlier table decided them. Returns the statement's summary
    /// slot; on refusal the batch is denied and `None` returned.
    pub(super) fn allowed_statement(&mut self, name: &str, table: &Table<'_>) -> Option<usize> {
        match self.refresh_statement(name, table) {
            Some((true, summary)) => Some(summary),
            Some((false, _)) => {
                let msg = match self.ready.recheck_msg.take() {
                    Some(m) => m,
                    None => format!("pgate: prepared statement \"{name}\" was denied by policy"),
                };
                self.refuse_in_batch(sqlstate::INSUFFICIENT_PRIVILEGE, &msg);
                None
            }
            None => {
                let msg = format!("prepared statement \"{name}\" does not exist");
                self.refuse_in_batch(sqlstate::INVALID_SQL_STATEMENT_NAME, &msg);
                None
            }
        }
    }

    /// Whether the prepared statement `name` is allowed under the current table, and the
    /// summary slot of the record a Bind would use; `None` if pgate knows no such statement.
    ///
    /// The records the server may hold under the name are checked, newest first: a pending
    /// Parse (or Close) of the current batch is certain — the server runs a batch in order
    /// and, after an error, skips the rest of it, this message included — but one of an
    /// earlier batch may have been skipped, so the record behind it is possible too, and
    /// every possible one must be allowed. Each is decided again if an earlier table
    /// decided it.
    fn refresh_statement(&mut self, name: &str, table: &Table<'_>) -> Option<(bool, usize)> {
        self.ready.recheck_msg = None;
        let current_unit = self.ready.unit_seq;
        let mut newest: Option<usize> = None;
        let mut all_allowed = true;
        let mut certain = false;
        let mut i = self.ready.confirms.len();
        while i > 0 {
            i -= 1;
            let c = &self.ready.confirms[i];
            if c.name != name || c.what == ConfirmKind::ClosePortal {
                continue;
            }
            let definite = c.unit == current_unit;
            if c.what == ConfirmKind::Parse {
                let (ok, slot) = self.refresh_record(Some(i), name, table);
                newest.get_or_insert(slot);
                all_allowed &= ok;
            } else if definite && newest.is_none() {
                return None;
            }
            if definite {
                certain = true;
                break;
            }
        }
        if !certain && self.ready.statements.contains_key(name) {
            let (ok, slot) = self.refresh_record(None, name, table);
            newest.get_or_insert(slot);
            all_allowed &= ok;
        }
        newest.map(|slot| (all_allowed, slot))
    }

    /// Decides one record again if an earlier table decided it: `confirms[i]`'s, or the
    /// confirmed statement `name` (`None`). Returns whether it is allowed and its slot.
    fn refresh_record(
        &mut self,
        at: Option<usize>,
        name: &str,
        table: &Table<'_>,
    ) -> (bool, usize) {
        let tgen = self.table_gen;
        let p = match at {
            Some(i) => self.ready.confirms.get(i).map(|c| &c.stmt),
            None => self.ready.statements.get(name),
        };
        let Some(p) = p else { return (false, 0) };
        // PostgreSQL analyses a cached statement again under a changed search path.
        let replan = p.decided.search_path != self.ready.search_path;
        if p.decided.table_gen == tgen && !replan {
            return (p.allowed, p.summary);
        }
        // Cold: once per record per swap or path change.
        let (sql, path, summary) = (
            p.decided.sql.clone(),
            if replan {
                self.ready.search_path.clone()
            } else {
                p.decided.search_path.clone()
            },
            p.summary,
        );
        let v = self.recheck_stored(&sql, &path, table);
        let allowed = v.is_allow();
        let mut out = std::mem::take(&mut self.ready.summaries[summary]);
        super::write_summary(&mut out, &self.ready.recheck, 0, &v, table, &sql, &path);
        self.ready.summaries[summary] = out;
        if !allowed {
            let msg = self.ready.recheck_msg.clone().unwrap_or_default();
            self.audit_denied_in(true, &v, table, &msg, &sql, &path);
        }
        let p = match at {
            Some(i) => self.ready.confirms.get_mut(i).map(|c| &mut c.stmt),
            None => self.ready.statements.get_mut(name),
        };
        if let Some(p) = p {
            p.allowed = allowed;
            p.decided.table_gen = tgen;
            p.decided.search_path = path;
        }
        (allowed, summary)
    }

    fn no_such_portal(&mut self, name: &str) {
        let msg = format!("portal \"{name}\" does not exist");
        self.refuse_in_batch(sqlstate::INVALID_CURSOR_NAME, &msg);
    }

    fn close_unnamed_portal(&mut self) {
        if std::mem::take(&mut self.ready.unnamed_portal_open) {
            self.slot_unref(self.ready.unnamed_portal.summary);
        }
    }

    /// Records the portal a Bind creates. False (batch denied) for a named portal that
    /// exists (PostgreSQL: 42P03) or past the portal limit.
    pub(super) fn bind_portal(&mut self, portal: &str, statement: &str, summary: usize) -> bool {
        let (version, effect, path_effect) = self
            .find_statement(statement)
            .map_or((0, None, PathEffect::None), |p| {
                (p.version, p.effect.clone(), p.path_effect)
            });
        let (tgen, unit) = (self.table_gen, self.ready.unit_seq);
        if portal.is_empty() {
            self.close_unnamed_portal();
            self.ready.unnamed_portal_open = true;
        } else if self.ready.portals.contains_key(portal) || self.ready.cursors.contains_key(portal)
        {
            let msg = format!("cursor \"{portal}\" already exists");
            self.refuse_in_batch(sqlstate::DUPLICATE_CURSOR, &msg);
            return false;
        } else if self.ready.portals.len() >= self.cfg.max_portals {
            self.refuse_in_batch(
                sqlstate::TOO_MANY,
                "pgate: too many open portals in this session; close some or end the transaction",
            );
            return false;
        }
        self.slot_ref(summary);
        self.ready.portal_ids += 1;
        let id = self.ready.portal_ids;
        let slot = if portal.is_empty() {
            &mut self.ready.unnamed_portal
        } else {
            self.ready.portals.entry(portal.to_owned()).or_default()
        };
        slot.id = id;
        slot.sent = (0, 0);
        slot.summary = summary;
        slot.statement.clear();
        slot.statement.push_str(statement);
        slot.version = version;
        slot.table_gen = tgen;
        slot.unit = unit;
        slot.effect = effect;
        slot.path_effect = path_effect;
        true
    }

    /// A piece of portal `id`'s result ended (PortalSuspended) having sent `sent` in all.
    pub(super) fn portal_sent(&mut self, id: u64, sent: (u64, u64)) {
        if id == 0 {
            return;
        }
        if self.ready.unnamed_portal_open && self.ready.unnamed_portal.id == id {
            self.ready.unnamed_portal.sent = sent;
        } else if let Some(p) = self.ready.portals.values_mut().find(|p| p.id == id) {
            p.sent = sent;
        }
    }

    /// The summary slot and SQL effect of the portal an Execute runs (`Ok(None)`: a portal
    /// pgate did not bind, which the server answers). A portal bound under an earlier
    /// table runs only if its statement, decided again, is still allowed; otherwise the
    /// batch is denied (`Err`).
    pub(super) fn portal_for_execute(
        &mut self,
        portal: &str,
        table: &Table<'_>,
    ) -> Result<Option<PortalRun>, ()> {
        let tgen = self.table_gen;
        let p = if portal.is_empty() {
            if !self.ready.unnamed_portal_open {
                self.no_such_portal(portal);
                return Err(());
            }
            &self.ready.unnamed_portal
        } else if let Some(p) = self.ready.portals.get(portal) {
            p
        } else {
            return self.cursor_for_execute(portal, table);
        };
        let (id, carried, path_effect) = (p.id, p.sent, p.path_effect);
        if p.table_gen == tgen {
            return Ok(Some(PortalRun {
                summary: p.summary,
                effect: p.effect.clone(),
                path_effect,
                portal: id,
                carried,
            }));
        }
        let (statement, version, summary) = (p.statement.clone(), p.version, p.summary);
        let current = self.find_statement(&statement).map(|s| s.version) == Some(version);
        let allowed =
            current && matches!(self.refresh_statement(&statement, table), Some((true, _)));
        if !allowed {
            let msg = match self.ready.recheck_msg.take() {
                Some(m) => m,
                None => format!(
                    "pgate: portal \"{portal}\" was bound under an earlier policy from a statement pgate can no longer decide; bind it again"
                ),
            };
            self.refuse_in_batch(sqlstate::INSUFFICIENT_PRIVILEGE, &msg);
            return Err(());
        }
        let p = if portal.is_empty() {
            Some(&mut self.ready.unnamed_portal)
        } else {
            self.ready.portals.get_mut(portal)
        };
        let effect = p.map(|p| {
            p.table_gen = tgen;
            p.effect.clone()
        });
        Ok(Some(PortalRun {
            summary,
            effect: effect.flatten(),
            path_effect,
            portal: id,
            carried,
        }))
    }

    /// Execute of a portal pgate did not bind: a SQL cursor's, decided again when an
    /// earlier table allowed its DECLARE. A portal pgate knows nothing of is refused as
    /// PostgreSQL refuses a missing one: pgate cannot say what it would run.
    fn cursor_for_execute(
        &mut self,
        name: &str,
        table: &Table<'_>,
    ) -> Result<Option<PortalRun>, ()> {
        let tgen = self.table_gen;
        let Some(c) = self.ready.cursors.get(name) else {
            self.no_such_portal(name);
            return Err(());
        };
        // Decided again (under the table in force: a reload may have come since the
        // DECLARE), and for its own audit line: PostgreSQL logs the Execute of a cursor's
        // portal with the cursor's statement.
        let (sql, path) = (c.decided.sql.clone(), c.decided.search_path.clone());
        let verdict = self.recheck_stored(&sql, &path, table);
        if !verdict.is_allow() {
            let msg = self.ready.recheck_msg.take().unwrap_or_default();
            self.audit_denied_in(true, &verdict, table, &msg, &sql, &path);
            self.refuse_in_batch(sqlstate::INSUFFICIENT_PRIVILEGE, &msg);
            return Err(());
        }
        if let Some(c) = self.ready.cursors.get_mut(name) {
            c.decided.table_gen = tgen;
        }
        let slot = self.new_summary();
        let mut out = std::mem::take(&mut self.ready.summaries[slot]);
        super::audit::write_summary(
            &mut out,
            &self.ready.recheck,
            0,
            &verdict,
            table,
            &sql,
            &path,
        );
        self.ready.summaries[slot] = out;
        Ok(Some(PortalRun {
            summary: slot,
            effect: Some(Box::new(SqlEffect::Fetch)),
            path_effect: PathEffect::None,
            portal: 0,
            carried: (0, 0),
        }))
    }

    /// ReadyForQuery 'I': no transaction is open, so the portals and cursors (other than
    /// WITH HOLD ones) of every answered unit are gone ("If successfully created, a named
    /// portal object lasts till the end of the current transaction").
    pub(super) fn transaction_ended(&mut self, done: u64) {
        if self.ready.unnamed_portal_open && self.ready.unnamed_portal.unit < done {
            self.close_unnamed_portal();
        }
        if !self.ready.portals.is_empty() {
            let mut gone = std::mem::take(&mut self.ready.scratch_slots);
            self.ready.portals.retain(|_, p| {
                let keep = p.unit >= done;
                if !keep {
                    gone.push(p.summary);
                }
                keep
            });
            for s in gone.drain(..) {
                self.slot_unref(s);
            }
            self.ready.scratch_slots = gone;
        }
        if !self.ready.cursors.is_empty() {
            self.ready.cursors.retain(|_, c| c.hold || c.unit >= done);
        }
    }

    // ---- SQL-level objects ----

    /// What statement `i` of the current facts does to SQL-level objects.
    pub(super) fn sql_effect(
        &self,
        i: usize,
        sql: &str,
        table: &Table<'_>,
    ) -> Option<Box<SqlEffect>> {
        let s = self.facts.statements().get(i)?;
        let f = s.flags;
        let name = self.facts.name(s.prepared_name);
        let named = || (!name.is_empty()).then(|| name.to_owned());
        let text = sql.get(s.start as usize..s.end as usize).unwrap_or("");
        let decided = || Decided::new(text, &self.ready.search_path, self.table_gen);
        let e = if f.contains(StatementFlags::PREPARES) {
            SqlEffect::Prepare(name.to_owned(), decided())
        } else if f.contains(StatementFlags::DEALLOCATES) {
            SqlEffect::Deallocate(named())
        } else if f.contains(StatementFlags::DECLARES_CURSOR) {
            SqlEffect::Declare {
                name: name.to_owned(),
                decided: decided(),
                hold: f.contains(StatementFlags::HOLDS_CURSOR),
            }
        } else if f.contains(StatementFlags::USES_CURSOR) {
            SqlEffect::Fetch
        } else if s
            .classes
            .contains(pgate_core::class::StatementClass::CopyOut)
        {
            // Recorded for every role: a reload may give the role masks before it runs.
            return self
                .copy_spec(s, text, table)
                .map(|r| Box::new(SqlEffect::CopyOut(r)));
        } else if f.contains(StatementFlags::CLOSES_CURSOR) {
            SqlEffect::CloseCursor(named())
        } else if f.contains(StatementFlags::LISTENS) {
            SqlEffect::Listen(name.to_owned())
        } else if f.contains(StatementFlags::UNLISTENS) {
            SqlEffect::Unlisten(named())
        } else if f.contains(StatementFlags::RESETS_SESSION)
            && text
                .trim_start()
                .get(..7)
                .is_some_and(|w| w.eq_ignore_ascii_case("discard"))
        {
            // DISCARD ALL: CLOSE ALL, DEALLOCATE ALL, UNLISTEN * (RESET ALL does none).
            SqlEffect::DiscardAll
        } else {
            return None;
        };
        Some(Box::new(e))
    }

    /// A statement with an effect completed (CommandComplete): the server changed state.
    pub(super) fn apply_sql_effect(&mut self, e: SqlEffect, unit: u64) {
        match e {
            // Completed: the server created it under that name (a duplicate would have
            // failed), replacing whatever pgate last knew of the name.
            SqlEffect::Prepare(name, d) => {
                self.ready.sql_prepared.insert(name, d);
            }
            SqlEffect::Deallocate(None) => {
                self.ready.sql_prepared.clear();
                // The namespace is shared: protocol-level statements go too.
                self.drop_all_statements();
            }
            SqlEffect::Deallocate(Some(name)) => {
                self.ready.sql_prepared.remove(&name);
                if let Some(old) = self.ready.statements.remove(&name) {
                    self.slot_unref(old.summary);
                }
            }
            SqlEffect::Declare {
                name,
                decided,
                hold,
            } => {
                self.forget_portal(&name);
                self.ready.cursors.insert(
                    name,
                    Cursor {
                        decided,
                        hold,
                        unit,
                    },
                );
            }
            // CLOSE ALL closes every portal, protocol-level ones included.
            SqlEffect::CloseCursor(None) => self.forget_all_portals(),
            SqlEffect::CloseCursor(Some(name)) => self.forget_portal(&name),
            SqlEffect::Listen(name) => {
                self.ready.listening.insert(name);
            }
            SqlEffect::Unlisten(None) => self.ready.listening.clear(),
            SqlEffect::Unlisten(Some(name)) => {
                self.ready.listening.remove(&name);
            }
            SqlEffect::DiscardAll => {
                self.ready.sql_prepared.clear();
                self.forget_all_portals();
                self.ready.listening.clear();
                self.drop_all_statements();
            }
            SqlEffect::Fetch | SqlEffect::CopyOut(_) => {}
        }
    }

    fn drop_all_statements(&mut self) {
        let slots: Vec<usize> = self
            .ready
            .statements
            .drain()
            .map(|(_, p)| p.summary)
            .collect();
        for s in slots {
            self.slot_unref(s);
        }
    }

    /// Whether statement `i` of the current facts finds `name` created earlier in the same
    /// string (decided with it; if that creation fails, the rest of the string does not
    /// run).
    fn created_here(&self, kind: Kind, name: &str, i: usize) -> bool {
        let creates = match kind {
            Kind::Prepared => StatementFlags::PREPARES,
            Kind::Cursor => StatementFlags::DECLARES_CURSOR,
        };
        self.facts.statements()[..i]
            .iter()
            .any(|s| s.flags.contains(creates) && self.facts.name(s.prepared_name) == name)
    }

    /// The stored texts the server may hold under `name` are the creations still running
    /// (one may fail and leave the older one) and the one pgate knows. This gives the
    /// position in `pending` of the next running creation below `below`, newest first.
    fn next_pending_creation(&self, kind: Kind, name: &str, below: usize) -> Option<usize> {
        (0..below.min(self.ready.pending.len())).rev().find(|&j| {
            match (kind, self.ready.pending[j].effect.as_deref()) {
                (Kind::Prepared, Some(SqlEffect::Prepare(n, _))) => n == name,
                (Kind::Cursor, Some(SqlEffect::Declare { name: n, .. })) => n == name,
                _ => false,
            }
        })
    }

    fn candidate(&self, kind: Kind, name: &str, at: Option<usize>) -> Option<&Decided> {
        match at {
            Some(j) => match (kind, self.ready.pending.get(j)?.effect.as_deref()?) {
                (Kind::Prepared, SqlEffect::Prepare(_, d)) => Some(d),
                (Kind::Cursor, SqlEffect::Declare { decided, .. }) => Some(decided),
                _ => None,
            },
            None => match kind {
                Kind::Prepared => self.ready.sql_prepared.get(name),
                Kind::Cursor => self.ready.cursors.get(name).map(|c| &c.decided),
            },
        }
    }

    fn candidate_mut(&mut self, kind: Kind, name: &str, at: Option<usize>) -> Option<&mut Decided> {
        match at {
            Some(j) => match (kind, self.ready.pending.get_mut(j)?.effect.as_deref_mut()?) {
                (Kind::Prepared, SqlEffect::Prepare(_, d)) => Some(d),
                (Kind::Cursor, SqlEffect::Declare { decided, .. }) => Some(decided),
                _ => None,
            },
            None => match kind {
                Kind::Prepared => self.ready.sql_prepared.get_mut(name),
                Kind::Cursor => self.ready.cursors.get_mut(name).map(|c| &mut c.decided),
            },
        }
    }

    /// `EXECUTE name` and `FETCH`/`MOVE name` of the current facts: every stored statement
    /// the server may run under that name must be allowed under the current table
    /// (decided again where an earlier table decided it). Returns the verdict to use
    /// instead of `verdict` when refused.
    pub(super) fn check_sql_uses(&mut self, verdict: Verdict, table: &Table<'_>) -> Verdict {
        let tgen = self.table_gen;
        for i in 0..self.facts.statements().len() {
            let s = self.facts.statements()[i];
            let kind = if s.flags.contains(StatementFlags::EXECUTES_PREPARED) {
                Kind::Prepared
            } else if s.flags.contains(StatementFlags::USES_CURSOR) {
                Kind::Cursor
            } else {
                continue;
            };
            let deny = |rule| Verdict {
                decision: Decision::Deny {
                    rule,
                    statement: i as u16,
                    reason: DenyReason::UnknownStatement,
                },
                ..verdict
            };
            let name = self.facts.name(s.prepared_name).to_owned();
            if matches!(kind, Kind::Prepared)
                && self.masks_active()
                && s.classes
                    .contains(pgate_core::class::StatementClass::SelectInto)
            {
                // `CREATE TABLE … AS EXECUTE p` stores p's result in a table, where no mask
                // applies: p was allowed as a result for the client only.
                self.ready.recheck_msg = Some(format!(
                    "pgate: permission denied for CREATE TABLE … AS EXECUTE \"{name}\" (role \"{}\" reads masked columns; a prepared statement's result may reach the client, masked, but not be stored)",
                    self.role_name()
                ));
                return deny(None);
            }
            if self.created_here(kind, &name, i) {
                continue;
            }
            // The path statement i runs under, where an earlier statement of the same string
            // changes it (`None`: the session's).
            let run_path = self.path_at(i);
            // Every candidate: running creations (`Some(j)`), then the known record (`None`).
            let mut found = false;
            let mut below = self.ready.pending.len();
            loop {
                let at = self.next_pending_creation(kind, &name, below);
                if let Some(d) = self.candidate(kind, &name, at) {
                    found = true;
                    // PostgreSQL analyses a prepared statement again when the search path
                    // changed since it was prepared ("if the value of search_path changes
                    // from one use to the next, the statement will be re-parsed using the
                    // new search_path"): it is decided again under the path it runs under.
                    let replan = match kind {
                        Kind::Prepared => run_path
                            .as_deref()
                            .unwrap_or(&self.ready.search_path)
                            .ne(&d.search_path),
                        Kind::Cursor => false,
                    };
                    if d.table_gen != tgen || replan {
                        let sql = d.sql.clone();
                        let path = match (replan, &run_path) {
                            (true, Some(p)) => p.clone(),
                            (true, None) => self.ready.search_path.clone(),
                            (false, _) => d.search_path.clone(),
                        };
                        let v = self.recheck_stored(&sql, &path, table);
                        if !v.is_allow() {
                            return deny(v.rule());
                        }
                        if let Some(d) = self.candidate_mut(kind, &name, at) {
                            d.table_gen = tgen;
                            d.search_path = path;
                        }
                    }
                }
                match at {
                    Some(j) => below = j,
                    None => break,
                }
            }
            if found {
                continue;
            }
            match kind {
                // EXECUTE of a SQL-level prepared statement: allowed only if pgate allowed
                // its PREPARE in this session.
                Kind::Prepared => return deny(None),
                // A cursor pgate did not see declared: procedural code (a function's
                // refcursor, a DO block) opened it over a query pgate never decided.
                Kind::Cursor => {
                    self.ready.recheck_msg = Some(format!(
                        "pgate: permission denied for FETCH or MOVE of cursor \"{name}\", which was not declared through pgate in this session (role \"{}\"): a cursor opened by procedural code reads rows no rule was checked against; DECLARE it in SQL instead",
                        self.role_name()
                    ));
                    return deny(None);
                }
            }
        }
        verdict
    }

    /// SQL-level objects a statement string would create beyond the session's limits
    /// (counting those created by statements still running).
    pub(super) fn limit_exceeded(&self) -> Option<&'static str> {
        let (mut prepares, mut cursors, mut channels) = (0usize, 0usize, 0usize);
        for p in &self.ready.pending {
            match p.effect.as_deref() {
                Some(SqlEffect::Prepare(..)) => prepares += 1,
                Some(SqlEffect::Declare { .. }) => cursors += 1,
                Some(SqlEffect::Listen(_)) => channels += 1,
                _ => {}
            }
        }
        let mut new_here = (0usize, 0usize, 0usize);
        for s in self.facts.statements() {
            let name = self.facts.name(s.prepared_name);
            if s.flags.contains(StatementFlags::PREPARES)
                && !self.ready.sql_prepared.contains_key(name)
            {
                new_here.0 += 1;
            }
            if s.flags.contains(StatementFlags::DECLARES_CURSOR)
                && !self.ready.cursors.contains_key(name)
            {
                new_here.1 += 1;
            }
            if s.flags.contains(StatementFlags::LISTENS) && !self.ready.listening.contains(name) {
                new_here.2 += 1;
            }
        }
        if new_here.0 > 0
            && self.ready.sql_prepared.len() + prepares + new_here.0 > self.cfg.max_sql_prepared
        {
            return Some(
                "pgate: too many prepared statements (PREPARE) in this session; DEALLOCATE some first",
            );
        }
        if new_here.1 > 0 && self.ready.cursors.len() + cursors + new_here.1 > self.cfg.max_cursors
        {
            return Some("pgate: too many open cursors in this session; CLOSE some first");
        }
        if new_here.2 > 0
            && self.ready.listening.len() + channels + new_here.2 > self.cfg.max_listen_channels
        {
            return Some("pgate: too many LISTEN channels in this session; UNLISTEN some first");
        }
        None
    }
}
