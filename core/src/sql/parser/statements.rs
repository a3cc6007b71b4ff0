//! Statements: the dispatch on a statement's first words, and the query / DML entry points.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// One top-level statement, to its end.
    pub fn statement(&mut self) -> R<()> {
        let t = self.peek();
        if t.kind == Kind::LParen {
            self.class(StatementClass::Select);
            self.query()?;
            return self.expect_end();
        }
        if t.kind != Kind::Ident {
            return Err(Fail("statement does not start with a keyword"));
        }
        match t.kw {
            Kw::Select
            | Kw::Values
            | Kw::Table
            | Kw::With
            | Kw::Insert
            | Kw::Update
            | Kw::Delete
            | Kw::Merge => {
                self.output_level = self.scopes.level.saturating_add(1);
                let c = self.dml_or_query()?;
                self.class(c);
            }
            Kw::Truncate => self.truncate()?,
            Kw::Copy => self.copy()?,
            Kw::Lock => self.lock()?,
            Kw::Explain => self.explain()?,
            Kw::Prepare => {
                if self.at_kw_n(1, Kw::Transaction) {
                    self.class(StatementClass::Transaction);
                    // Ends the transaction; its settings are kept as by COMMIT
                    // (PostgreSQL's PrepareTransaction runs AtEOXact_GUC(true, …)).
                    self.path_effect = crate::sql::PathEffect::Commit { chain: false };
                    self.rest()?;
                } else {
                    self.prepare()?;
                }
            }
            Kw::Execute => self.execute()?,
            Kw::Deallocate => {
                self.next();
                self.class(StatementClass::Prepare);
                self.flags |= StatementFlags::DEALLOCATES;
                self.eat_kw(Kw::Prepare);
                if !self.eat_kw(Kw::All) {
                    let n = self.any_name_token()?;
                    self.prepared_name = self.push(n.as_str())?;
                }
            }
            Kw::Declare => self.declare()?,
            Kw::Fetch | Kw::Move | Kw::Close => self.cursor_use(t.kw)?,
            Kw::Begin
            | Kw::Start
            | Kw::Commit
            | Kw::End
            | Kw::Rollback
            | Kw::Abort
            | Kw::Savepoint
            | Kw::Release => {
                self.class(StatementClass::Transaction);
                self.transaction_control(t.kw)?;
            }
            Kw::Set => self.set()?,
            Kw::Reset => self.reset()?,
            Kw::Show => {
                self.class(StatementClass::Session);
                self.rest()?;
            }
            Kw::Discard => {
                self.next();
                self.class(StatementClass::Session);
                if self.at_kw(Kw::All) {
                    self.flags |= StatementFlags::RESETS_SESSION;
                    self.path_effect = crate::sql::PathEffect::Reset;
                }
                self.rest()?;
            }
            Kw::Listen | Kw::Unlisten => self.listen(t.kw)?,
            Kw::Notify => {
                self.class(StatementClass::Notify);
                self.rest()?;
            }
            Kw::Call => self.call()?,
            Kw::Do => {
                self.class(StatementClass::Call);
                self.rest()?;
            }
            Kw::Grant | Kw::Revoke | Kw::Reassign => {
                self.class(StatementClass::Dcl);
                self.rest()?;
            }
            Kw::Create => self.create()?,
            Kw::Alter => self.alter()?,
            Kw::Drop => self.drop()?,
            Kw::Comment | Kw::Security | Kw::Import => {
                self.class(StatementClass::Ddl);
                self.rest()?;
            }
            Kw::Refresh => {
                // REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]
                self.next();
                self.expect_kw(Kw::Materialized)?;
                self.expect_kw(Kw::View)?;
                self.eat_kw(Kw::Concurrently);
                self.class(StatementClass::SelectInto);
                let c = self.chain(false)?;
                let q = self.resolve_table(&c)?;
                self.push_access(StatementClass::SelectInto, q)?;
                self.rest()?;
            }
            Kw::Vacuum | Kw::Analyze | Kw::Analyse | Kw::Cluster => self.maintenance()?,
            Kw::Reindex | Kw::Checkpoint | Kw::Load => {
                self.class(StatementClass::Utility);
                self.next();
                if t.is(Kw::Reindex) {
                    // REINDEX [(opts)] TABLE [CONCURRENTLY] name
                    if self.at(Kind::LParen) {
                        self.skip_parens()?;
                    }
                    if self.eat_kw(Kw::Table) {
                        self.eat_kw(Kw::Concurrently);
                        let c = self.chain(false)?;
                        let q = self.resolve_table(&c)?;
                        self.push_access(StatementClass::Utility, q)?;
                    }
                }
                self.rest()?;
            }
            _ => return Err(Fail("unknown statement keyword")),
        }
        self.expect_end()?;
        if self.classes.contains(StatementClass::SelectInto) {
            // SELECT … INTO, CREATE TABLE AS (also under EXPLAIN ANALYZE): every read
            // also feeds the new table, so it is also a `select-into` access.
            self.mirror_reads(0, 0, StatementClass::SelectInto)?;
        }
        Ok(())
    }

    /// `VACUUM|ANALYZE [(opts)] [FULL|FREEZE|VERBOSE|ANALYZE…] [name [(cols)], …]` and
    /// `CLUSTER [(opts)] [VERBOSE] [name [USING index]]`: utility accesses on the tables.
    pub(super) fn maintenance(&mut self) -> R<()> {
        self.class(StatementClass::Utility);
        let cluster = self.at_kw(Kw::Cluster);
        self.next();
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        while [Kw::Full, Kw::Freeze, Kw::Verbose, Kw::Analyze, Kw::Analyse]
            .contains(&self.peek().kw)
        {
            self.next();
        }
        while self.peek().is_name() {
            let mut c = self.chain(false)?;
            if cluster && self.eat_kw(Kw::On) {
                // Old syntax `CLUSTER index ON table`.
                c = self.chain(false)?;
            }
            let q = self.resolve_table(&c)?;
            self.push_access(StatementClass::Utility, q)?;
            if self.at(Kind::LParen) {
                self.skip_parens()?;
            }
            if cluster && self.eat_kw(Kw::Using) {
                self.any_name_token()?;
            }
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        Ok(())
    }

    /// `[WITH …] SELECT/VALUES/TABLE/INSERT/UPDATE/DELETE/MERGE …` — a statement that may
    /// stand inside EXPLAIN, PREPARE, DECLARE, COPY (…), CREATE TABLE AS and CTEs.
    /// Returns the class of the main statement.
    pub(super) fn dml_or_query(&mut self) -> R<StatementClass> {
        self.enter()?;
        self.scopes.push_level();
        let cte_mark = self.scopes.cte_mark();
        let outs_mark = self.n_outs;
        let r = self.dml_or_query_inner();
        self.n_outs = outs_mark;
        self.scopes.cte_truncate(cte_mark);
        self.scopes.pop_level();
        self.leave();
        r
    }

    pub(super) fn dml_or_query_inner(&mut self) -> R<StatementClass> {
        if self.at_kw(Kw::With) {
            self.with_clause()?;
        }
        let t = self.peek();
        let class = match t.kw {
            Kw::Insert => {
                self.insert()?;
                StatementClass::Insert
            }
            Kw::Update => {
                self.update()?;
                StatementClass::Update
            }
            Kw::Delete => {
                self.delete()?;
                StatementClass::Delete
            }
            Kw::Merge => {
                self.merge()?;
                StatementClass::Merge
            }
            _ => {
                // The WITH clause was already read: parse the body in this level.
                self.set_expr()?;
                self.query_tail()?;
                StatementClass::Select
            }
        };
        Ok(class)
    }

    /// A SELECT-ish query with its own level (subqueries, derived tables, INSERT sources).
    pub(super) fn query(&mut self) -> R<()> {
        self.enter()?;
        self.scopes.push_level();
        let cte_mark = self.scopes.cte_mark();
        let outs_mark = self.n_outs;
        let r = (|| {
            if self.at_kw(Kw::With) {
                self.with_clause()?;
            }
            self.set_expr()?;
            self.query_tail()
        })();
        self.n_outs = outs_mark;
        self.scopes.cte_truncate(cte_mark);
        self.scopes.pop_level();
        self.leave();
        r
    }

    /// Whether `( … )` at the current position starts a subquery: `Some(true)` for
    /// `(SELECT`, `(VALUES`, `(WITH`, `(TABLE`; `None` for `((…` that reaches one of those
    /// (a parenthesised query, or an expression/join that begins with one: ambiguous).
    pub(super) fn paren_starts_query(&mut self) -> R<Option<bool>> {
        let mut n = 1;
        let mut k = 1;
        loop {
            let t = self.peek_n(k);
            k += 1;
            if t.kind == Kind::LParen {
                n += 1;
                if n > MAX_PAREN_LOOKAHEAD_TOKENS {
                    return Ok(Some(false));
                }
                continue;
            }
            let q = t.is(Kw::Select) || t.is(Kw::Values) || t.is(Kw::With) || t.is(Kw::Table);
            return Ok(match (q, n) {
                (false, _) => Some(false),
                (true, 1) => Some(true),
                (true, _) => None,
            });
        }
    }
}
