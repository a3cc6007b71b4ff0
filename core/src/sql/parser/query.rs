//! Queries: WITH, set operations, ORDER BY / LIMIT / locking clauses and the output names they can refer to.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (stmt) [SEARCH …] [CYCLE …], …`
    pub(super) fn with_clause(&mut self) -> R<()> {
        self.expect_kw(Kw::With)?;
        let recursive = self.eat_kw(Kw::Recursive);
        if recursive {
            // In WITH RECURSIVE every CTE of the list is visible in every body, earlier
            // ones included (forward and mutual references): register all names first.
            let start = self.save();
            loop {
                let name = self.any_name_token()?;
                self.scopes.add_cte(name)?;
                if self.at(Kind::LParen) {
                    self.skip_parens()?;
                }
                self.expect_kw(Kw::As)?;
                if self.eat_kw(Kw::Not) {
                    self.expect_kw(Kw::Materialized)?;
                } else {
                    self.eat_kw(Kw::Materialized);
                }
                self.skip_parens()?;
                self.skip_search_cycle()?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.restore(start);
        }
        loop {
            let name = self.any_name_token()?;
            if self.at(Kind::LParen) {
                self.skip_parens()?;
            }
            self.expect_kw(Kw::As)?;
            if self.eat_kw(Kw::Not) {
                self.expect_kw(Kw::Materialized)?;
            } else {
                self.eat_kw(Kw::Materialized);
            }
            self.expect(Kind::LParen)?;
            let class = self.dml_or_query()?;
            if class != StatementClass::Select {
                self.flags |= StatementFlags::DATA_MODIFYING_CTE;
                self.class(class);
            }
            self.expect(Kind::RParen)?;
            if !recursive {
                // A plain CTE is visible after its definition only (in its own body the
                // name is a table).
                self.scopes.add_cte(name)?;
            }
            self.skip_search_cycle()?;
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        Ok(())
    }

    /// `SEARCH {BREADTH|DEPTH} FIRST BY cols SET col` / `CYCLE cols SET col [TO v DEFAULT
    /// v] USING col`: names of the CTE's own output columns, skipped.
    pub(super) fn skip_search_cycle(&mut self) -> R<()> {
        while self.at_kw(Kw::Search) || self.at_kw(Kw::Cycle) {
            loop {
                let t = self.peek();
                if matches!(t.kind, Kind::Eof | Kind::Comma | Kind::LParen)
                    && !(t.kind == Kind::Comma && self.in_search_list())
                {
                    break;
                }
                if [
                    Kw::Select,
                    Kw::Insert,
                    Kw::Update,
                    Kw::Delete,
                    Kw::Merge,
                    Kw::Values,
                    Kw::Table,
                ]
                .contains(&t.kw)
                {
                    break;
                }
                self.next();
            }
        }
        Ok(())
    }

    /// Inside SEARCH/CYCLE, a comma separates column names when a name follows and the
    /// token after that is not `AS`/`(` (which would start the next CTE).
    pub(super) fn in_search_list(&mut self) -> bool {
        let a = self.peek_n(1);
        let b = self.peek_n(2);
        a.is_name() && !b.is(Kw::As) && b.kind != Kind::LParen
    }

    /// `term ((UNION|INTERSECT|EXCEPT) [ALL|DISTINCT] term)*`
    pub(super) fn set_expr(&mut self) -> R<()> {
        let mark = self.facts.current_columns_mut().len();
        let mut set_op = false;
        loop {
            self.select_term()?;
            if self.eat_kw(Kw::Union) || self.eat_kw(Kw::Intersect) || self.eat_kw(Kw::Except) {
                set_op = true;
                if !self.eat_kw(Kw::All) {
                    self.eat_kw(Kw::Distinct);
                }
                continue;
            }
            if set_op {
                // A set operation compares the rows, and its result names no table.
                for c in self.facts.current_columns_mut().iter_mut().skip(mark) {
                    c.plain = false;
                }
            }
            return Ok(());
        }
    }

    pub(super) fn select_term(&mut self) -> R<()> {
        let t = self.peek();
        if t.kind == Kind::LParen {
            self.next();
            self.query()?;
            self.expect(Kind::RParen)?;
            return Ok(());
        }
        if t.is(Kw::Select) {
            return self.simple_select();
        }
        if t.is(Kw::Values) {
            self.next();
            loop {
                self.expect(Kind::LParen)?;
                self.expr_list_until_rparen(Clause::Other)?;
                if !self.eat(Kind::Comma) {
                    return Ok(());
                }
            }
        }
        if t.is(Kw::Table) {
            // `TABLE name` = `SELECT * FROM name`.
            self.next();
            self.eat_kw(Kw::Only);
            let c = self.chain(false)?;
            self.eat_op("*");
            let (_, _, reads) = self.read_access(&c)?;
            self.push_column(ColumnName::All, reads, 0, true, Clause::SelectList)?;
            if self.scopes.level == self.output_level {
                self.mark_last_plain();
            }
            return Ok(());
        }
        Err(Fail("expected SELECT, VALUES, TABLE or ("))
    }

    pub(super) fn eat_op(&mut self, op: &str) -> bool {
        let t = self.peek();
        if t.is_op(self.sql, op) {
            self.next();
            return true;
        }
        false
    }

    /// `ORDER BY …`, `LIMIT`, `OFFSET`, `FETCH`, `FOR UPDATE …`, in any order.
    pub(super) fn query_tail(&mut self) -> R<()> {
        loop {
            if self.at_kw(Kw::Order) {
                self.next();
                self.expect_kw(Kw::By)?;
                self.order_by_list()?;
            } else if self.eat_kw(Kw::Limit) {
                if !self.eat_kw(Kw::All) {
                    self.expr(Clause::Other)?;
                }
                if self.eat(Kind::Comma) {
                    // LIMIT a, b: PostgreSQL rejects it, so do we.
                    return Err(Fail("LIMIT #,# syntax"));
                }
            } else if self.eat_kw(Kw::Offset) {
                self.expr(Clause::Other)?;
                if !self.eat_kw(Kw::Row) {
                    self.eat_kw(Kw::Rows);
                }
            } else if self.eat_kw(Kw::Fetch) {
                if !self.eat_kw(Kw::First) {
                    self.expect_kw(Kw::Next)?;
                }
                if !(self.at_kw(Kw::Row) || self.at_kw(Kw::Rows)) {
                    self.expr(Clause::Other)?;
                }
                if !self.eat_kw(Kw::Row) {
                    self.expect_kw(Kw::Rows)?;
                }
                if !self.eat_kw(Kw::Only) {
                    self.expect_kw(Kw::With)?;
                    self.expect_kw(Kw::Ties)?;
                }
            } else if self.at_kw(Kw::For) {
                self.next();
                // FOR {UPDATE | NO KEY UPDATE | SHARE | KEY SHARE} [OF names] [NOWAIT | SKIP LOCKED]
                if self.eat_kw(Kw::No) {
                    self.expect_kw(Kw::Key)?;
                    self.expect_kw(Kw::Update)?;
                } else if self.eat_kw(Kw::Key) || !self.eat_kw(Kw::Update) {
                    self.expect_kw(Kw::Share)?;
                }
                // Row locks need UPDATE privilege in PostgreSQL: policy sees them as `lock`
                // accesses on the tables locked.
                self.class(StatementClass::Lock);
                if self.eat_kw(Kw::Of) {
                    loop {
                        let c = self.chain(false)?;
                        if let Some(i) = self.scopes.find(&self.name_of(&c.last())?) {
                            self.lock_entry(i)?;
                        }
                        if !self.eat(Kind::Comma) {
                            break;
                        }
                    }
                } else {
                    let level = self.scopes.level;
                    for i in 0..self.scopes.len() {
                        if self.scopes.get(i).is_some_and(|e| e.level == level) {
                            self.lock_entry(i)?;
                        }
                    }
                }
                if !self.eat_kw(Kw::Nowait) && self.eat_kw(Kw::Skip) {
                    self.expect_kw(Kw::Locked)?;
                }
            } else {
                return Ok(());
            }
        }
    }

    /// `expr [ASC|DESC|USING op] [NULLS FIRST|LAST], …`
    pub(super) fn sort_list(&mut self, clause: Clause) -> R<()> {
        self.sort_items(clause, false)
    }

    /// A query's `ORDER BY` list. PostgreSQL (`findTargetlistEntrySQL92`) reads an item
    /// that is a bare name as the select list's output column of that name first (an
    /// alias, or the name a column or function target gets): such an item references
    /// no table column (the target's own columns are reported where it is written).
    pub(super) fn order_by_list(&mut self) -> R<()> {
        self.sort_items(Clause::OrderBy, true)
    }

    pub(super) fn sort_items(&mut self, clause: Clause, outputs: bool) -> R<()> {
        loop {
            if outputs && matches!(self.peek().kind, Kind::Number | Kind::LParen) {
                // `ORDER BY 2` sorts by a select-list item: whichever it is, it is used
                // (PostgreSQL drops the parentheses of `ORDER BY (2)`, `(e)`).
                self.unplain_all = true;
            }
            if !(outputs && self.eat_output_name()?) {
                self.expr(clause)?;
            }
            if !self.eat_kw(Kw::Asc) && !self.eat_kw(Kw::Desc) && self.eat_kw(Kw::Using) {
                self.operator_name()?;
            }
            if self.eat_kw(Kw::Nulls) && !self.eat_kw(Kw::First) {
                self.expect_kw(Kw::Last)?;
            }
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    /// At a bare name that is an output name of the current query level's select list,
    /// and ends the sort item: consumes it.
    pub(super) fn eat_output_name(&mut self) -> R<bool> {
        let t = self.peek();
        if !t.is_name() || (t.kind == Kind::Ident && t.kw.is_reserved()) || self.outs_full {
            return Ok(false);
        }
        let after = self.peek_n(1);
        let ends = matches!(after.kind, Kind::Comma | Kind::Eof | Kind::RParen)
            || [
                Kw::Asc,
                Kw::Desc,
                Kw::Using,
                Kw::Nulls,
                Kw::Limit,
                Kw::Offset,
                Kw::Fetch,
                Kw::For,
            ]
            .contains(&after.kw);
        if !ends {
            return Ok(false);
        }
        let level = self.scopes.level;
        let name = self.name_of(&t)?;
        for i in 0..self.n_outs.min(MAX_OUTPUT_NAMES) {
            let (l, o) = self.outs[i];
            if l == level && self.name_of(&o)? == name {
                self.next();
                self.unplain_output(i);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The output `i` is sorted or grouped by: its column's value is used.
    pub(super) fn unplain_output(&mut self, i: usize) {
        let c = self.outs_col.get(i).copied().unwrap_or(NO_COLUMN);
        if let Some(col) = self.facts.current_columns_mut().get_mut(c as usize) {
            col.plain = false;
        }
    }

    /// The column just pushed is a plain one (see `ColumnRef::plain`).
    pub(super) fn mark_last_plain(&mut self) {
        if let Some(c) = self.facts.current_columns_mut().last_mut() {
            c.plain = true;
        }
    }

    /// Whether tokens `start..end` are a bare column reference: `name(.name)*`, optionally
    /// ending in `.*`.
    pub(super) fn is_bare_chain(&mut self, start: usize, end: usize) -> bool {
        if end <= start || !self.tok(start).is_name() {
            return false;
        }
        let mut i = start + 1;
        while i + 1 < end && self.tok(i).kind == Kind::Dot {
            let t = self.tok(i + 1);
            if !(t.is_name() || t.is_op(self.sql, "*")) {
                return false;
            }
            i += 2;
        }
        i == end
    }

    /// Remembers an output name of the select list being read (see `order_by_list`).
    pub(super) fn record_output(&mut self, t: Token) {
        match self.outs.get_mut(self.n_outs) {
            Some(slot) => {
                *slot = (self.scopes.level, t);
                if let Some(c) = self.outs_col.get_mut(self.n_outs) {
                    *c = self.out_col;
                }
                self.n_outs += 1;
            }
            // Too many to remember: ORDER BY names are then all reported (fail closed),
            // and no column stays plain (a sort by alias could not be told).
            None => {
                self.outs_full = true;
                self.unplain_all = true;
            }
        }
    }

    /// The output name PostgreSQL gives a target without an alias, if it is a plain
    /// (possibly qualified) column reference or a function call (`FigureColname`).
    pub(super) fn implicit_output_name(&mut self, start: usize, end: usize) -> Option<Token> {
        let first = self.tok(start);
        if !first.is_name() || end <= start {
            return None;
        }
        // name(.name)*
        let mut i = start + 1;
        let mut last = first;
        while i + 1 < end && self.tok(i).kind == Kind::Dot && self.tok(i + 1).is_name() {
            last = self.tok(i + 1);
            i += 2;
        }
        if i == end {
            return Some(last);
        }
        // name(.name)*( … ) as the whole target
        if self.tok(i).kind == Kind::LParen && self.tok(end - 1).kind == Kind::RParen {
            let mut depth = 0u32;
            for j in i..end {
                match self.tok(j).kind {
                    Kind::LParen => depth += 1,
                    Kind::RParen => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 && j + 1 != end {
                            return None;
                        }
                    }
                    _ => {}
                }
            }
            return Some(last);
        }
        None
    }

    /// An operator after `USING`: `<` or `OPERATOR(schema.op)`.
    pub(super) fn operator_name(&mut self) -> R<()> {
        let t = self.next();
        if t.kind == Kind::Op {
            return Ok(());
        }
        if t.is(Kw::Operator) {
            self.skip_parens()?;
            return Ok(());
        }
        Err(Fail("expected an operator"))
    }

    /// Stops (without consuming) at a clause keyword at parenthesis depth 0: used to read
    /// FROM before the target list that precedes it, as PostgreSQL's scoping requires.
    pub(super) fn skip_to_clause(&mut self, stops: &[Kw]) -> R<()> {
        let mut depth = 0u32;
        let mut prev_distinct = false;
        let mut prev_within = false;
        let mut prev_collation = false;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof | Kind::Semicolon => return Ok(()),
                Kind::LParen | Kind::LBracket => depth += 1,
                Kind::RParen | Kind::RBracket => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Kind::Ident if depth == 0 && t.kw != Kw::None => {
                    let w = t.kw;
                    // `a IS [NOT] DISTINCT FROM b` is not a FROM clause.
                    // `WITH [NO] DATA` ends CREATE TABLE AS's query.
                    if w == Kw::With {
                        let n = self.peek_n(1);
                        if n.is(Kw::No) || n.is(Kw::Data) {
                            return Ok(());
                        }
                    }
                    if stops.contains(&w)
                        && !(prev_distinct && w == Kw::From)
                        && !(prev_within && w == Kw::Group)
                        && !(prev_collation && w == Kw::For)
                    {
                        return Ok(());
                    }
                }
                _ => {}
            }
            prev_distinct = t.is(Kw::Distinct);
            prev_within = t.is(Kw::Within);
            prev_collation = t.is(Kw::Collation);
            self.next();
        }
    }

    pub(super) const SELECT_CLAUSES: &'static [Kw] = &[
        Kw::Into,
        Kw::From,
        Kw::Where,
        Kw::Group,
        Kw::Having,
        Kw::Window,
        Kw::Union,
        Kw::Intersect,
        Kw::Except,
        Kw::Order,
        Kw::Limit,
        Kw::Offset,
        Kw::Fetch,
        Kw::For,
        Kw::Returning,
        Kw::On,
    ];
}
