//! SELECT: the select list, INTO, GROUP BY, windows and frames.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    pub(super) fn simple_select(&mut self) -> R<()> {
        self.expect_kw(Kw::Select)?;
        let mut distinct_on = None;
        // DISTINCT compares the values, INTO stores them: no item is a plain output.
        let mut plain = self.scopes.level == self.output_level;
        if self.eat_kw(Kw::Distinct) {
            plain = false;
            if self.at_kw(Kw::On) {
                self.next();
                distinct_on = Some(self.save());
                self.skip_parens()?;
            }
        } else {
            self.eat_kw(Kw::All);
        }
        let targets = self.save();
        self.skip_to_clause(Self::SELECT_CLAUSES)?;
        let targets_end = self.peek().start;
        if self.at_kw(Kw::Into) {
            plain = false;
            self.select_into_clause()?;
        }
        if self.eat_kw(Kw::From) {
            self.table_list()?;
        }
        let after_from = self.save();
        // Now the FROM items are in scope: DISTINCT ON and the target list.
        if let Some(d) = distinct_on {
            self.restore(d);
            self.expect(Kind::LParen)?;
            self.expr_list_until_rparen(Clause::OrderBy)?;
        }
        self.restore(targets);
        if self.peek().start < targets_end {
            self.target_list(Clause::SelectList, plain)?;
        }
        if self.peek().start != targets_end {
            return Err(Fail("target list not understood"));
        }
        self.restore(after_from);
        if self.eat_kw(Kw::Where) {
            self.expr(Clause::Where)?;
        }
        if self.at_kw(Kw::Group) {
            self.next();
            self.expect_kw(Kw::By)?;
            if !self.eat_kw(Kw::All) {
                self.eat_kw(Kw::Distinct);
            }
            self.grouping_list()?;
        }
        if self.eat_kw(Kw::Having) {
            self.expr(Clause::Having)?;
        }
        if self.eat_kw(Kw::Window) {
            loop {
                self.any_name_token()?;
                self.expect_kw(Kw::As)?;
                self.window_spec()?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `INTO [TEMPORARY|TEMP|UNLOGGED] [TABLE] name`
    pub(super) fn select_into_clause(&mut self) -> R<()> {
        self.expect_kw(Kw::Into)?;
        let _ = self.eat_kw(Kw::Temporary) || self.eat_kw(Kw::Temp) || self.eat_kw(Kw::Unlogged);
        self.eat_kw(Kw::Table);
        let c = self.chain(false)?;
        let q = self.creation_name(&c)?;
        self.push_access(StatementClass::SelectInto, q)?;
        self.class(StatementClass::SelectInto);
        Ok(())
    }

    pub(super) fn grouping_list(&mut self) -> R<()> {
        loop {
            self.grouping_item()?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    pub(super) fn grouping_item(&mut self) -> R<()> {
        if self.at(Kind::LParen) && self.peek_n(1).kind == Kind::RParen {
            self.next();
            self.next();
            return Ok(());
        }
        if (self.at_kw(Kw::Rollup) || self.at_kw(Kw::Cube)) && self.peek_n(1).kind == Kind::LParen {
            // Their items may be select-list positions or aliases too.
            self.unplain_all = true;
            self.next();
            self.expect(Kind::LParen)?;
            self.expr_list_until_rparen(Clause::GroupBy)?;
            return Ok(());
        }
        if self.at_kw(Kw::Grouping) && self.at_kw_n(1, Kw::Sets) {
            self.unplain_all = true;
            self.next();
            self.next();
            self.expect(Kind::LParen)?;
            self.enter()?;
            if !self.at(Kind::RParen) {
                self.grouping_list()?;
            }
            self.leave();
            self.expect(Kind::RParen)?;
            return Ok(());
        }
        if matches!(self.peek().kind, Kind::Number | Kind::LParen) {
            // `GROUP BY 1` groups by a select-list item (and so may `(1)`, `(e)`).
            self.unplain_all = true;
        }
        let alias = self.at_group_output_name()?;
        let mark = self.facts.current_columns_mut().len();
        self.expr(Clause::GroupBy)?;
        if alias {
            for c in self.facts.current_columns_mut().iter_mut().skip(mark) {
                c.output_alias = true;
            }
        }
        Ok(())
    }

    /// At a bare name that is a whole GROUP BY item and equals an output name of the
    /// current select list (not consumed: PostgreSQL prefers an input column of that name,
    /// which the decider resolves with the catalog — see `ColumnRef::output_alias`).
    pub(super) fn at_group_output_name(&mut self) -> R<bool> {
        let t = self.peek();
        if !t.is_name() || (t.kind == Kind::Ident && t.kw.is_reserved()) || self.outs_full {
            return Ok(false);
        }
        let after = self.peek_n(1);
        let ends = matches!(
            after.kind,
            Kind::Comma | Kind::Eof | Kind::RParen | Kind::Semicolon
        ) || [
            Kw::Having,
            Kw::Window,
            Kw::Order,
            Kw::Limit,
            Kw::Offset,
            Kw::Fetch,
            Kw::For,
            Kw::Union,
            Kw::Intersect,
            Kw::Except,
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
                self.unplain_output(i);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `( [name] [PARTITION BY …] [ORDER BY …] [frame] )`
    pub(super) fn window_spec(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        let t = self.peek();
        if t.is_name()
            && ![Kw::Partition, Kw::Order, Kw::Range, Kw::Rows, Kw::Groups].contains(&t.kw)
        {
            self.next();
        }
        if self.eat_kw(Kw::Partition) {
            self.expect_kw(Kw::By)?;
            loop {
                self.expr(Clause::Window)?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw(Kw::Order) {
            self.expect_kw(Kw::By)?;
            self.sort_list(Clause::Window)?;
        }
        if self.eat_kw(Kw::Range) || self.eat_kw(Kw::Rows) || self.eat_kw(Kw::Groups) {
            if self.eat_kw(Kw::Between) {
                self.frame_bound()?;
                self.expect_kw(Kw::And)?;
                self.frame_bound()?;
            } else {
                self.frame_bound()?;
            }
            if self.eat_kw(Kw::Exclude) {
                if self.eat_kw(Kw::Current) {
                    self.expect_kw(Kw::Row)?;
                } else if self.eat_kw(Kw::No) {
                    self.expect_kw(Kw::Others)?;
                } else if !self.eat_kw(Kw::Group) {
                    self.expect_kw(Kw::Ties)?;
                }
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    pub(super) fn frame_bound(&mut self) -> R<()> {
        if self.eat_kw(Kw::Unbounded) {
            if !self.eat_kw(Kw::Preceding) {
                self.expect_kw(Kw::Following)?;
            }
            return Ok(());
        }
        if self.at_kw(Kw::Current) && self.at_kw_n(1, Kw::Row) {
            self.next();
            self.next();
            return Ok(());
        }
        self.expr(Clause::Window)?;
        if !self.eat_kw(Kw::Preceding) {
            self.expect_kw(Kw::Following)?;
        }
        Ok(())
    }

    /// `item [AS label | label], …` (select list, RETURNING). `plain`: this is the
    /// statement's result, whose bare column items are plain output columns.
    pub(super) fn target_list(&mut self, clause: Clause, plain: bool) -> R<()> {
        loop {
            if self.peek().is_op(self.sql, "*") {
                self.next();
                let m = self.level_bases()?;
                self.push_column(ColumnName::All, m, 0, false, clause)?;
                if plain {
                    self.mark_last_plain();
                }
            } else {
                let start = self.cur;
                let mark = self.facts.current_columns_mut().len();
                self.expr(clause)?;
                let end = self.cur;
                self.out_col = NO_COLUMN;
                if plain
                    && self.facts.current_columns_mut().len() == mark + 1
                    && self.is_bare_chain(start, end)
                {
                    self.mark_last_plain();
                    self.out_col = mark as u32;
                }
                let outputs = clause == Clause::SelectList;
                if self.eat_kw(Kw::As) {
                    let t = self.peek();
                    self.any_name_token()?;
                    if outputs {
                        self.record_output(t);
                    }
                } else {
                    let t = self.peek();
                    if t.kind == Kind::QuotedIdent
                        || (t.kind == Kind::Ident
                            && !Self::SELECT_CLAUSES.contains(&t.kw)
                            && !t.is(Kw::As)
                            && !t.is(Kw::With))
                    {
                        // A bare column label.
                        self.next();
                        if outputs {
                            self.record_output(t);
                        }
                    } else if outputs
                        && self.base <= start
                        && let Some(n) = self.implicit_output_name(start, end)
                    {
                        self.record_output(n);
                    }
                }
            }
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }
}
