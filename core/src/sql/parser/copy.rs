//! COPY: its direction, its relation or query, and the reads it mirrors.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `COPY { table [(cols)] | (query) } { FROM | TO } { STDIN | STDOUT | 'file' | PROGRAM 'cmd' } …`
    pub(super) fn copy(&mut self) -> R<()> {
        self.expect_kw(Kw::Copy)?;
        self.eat_kw(Kw::Binary);
        let mark_tables = self.facts.current_table_count();
        let mark_cols = self.facts.current_columns_mut().len();
        let mut table: Option<Chain> = None;
        let mut cols = [Name::default(); MAX_COPY_COLUMNS];
        let mut n_cols = None;
        if self.at(Kind::LParen) {
            self.next();
            let c = self.dml_or_query()?;
            self.class(c);
            self.expect(Kind::RParen)?;
        } else {
            table = Some(self.chain(false)?);
            if self.eat(Kind::LParen) {
                let mut n = 0;
                loop {
                    let name = self.any_name_token()?;
                    let slot = cols.get_mut(n).ok_or(Fail("COPY column list too long"))?;
                    *slot = name;
                    n += 1;
                    if !self.eat(Kind::Comma) {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
                n_cols = Some(n);
            }
        }
        let from = if self.eat_kw(Kw::From) {
            true
        } else {
            self.expect_kw(Kw::To)?;
            false
        };
        if from && table.is_none() {
            return Err(Fail("COPY (query) FROM"));
        }
        let class = if self.eat_kw(Kw::Stdin) || self.eat_kw(Kw::Stdout) {
            if from {
                StatementClass::CopyIn
            } else {
                StatementClass::CopyOut
            }
        } else {
            self.eat_kw(Kw::Program);
            let t = self.next();
            if !t.is_string() {
                return Err(Fail("COPY target not understood"));
            }
            StatementClass::CopyServer
        };
        self.class(class);
        let mut target = None;
        if let Some(c) = table {
            let q = self.resolve_table(&c)?;
            let idx = self.push_access(class, q)?;
            match n_cols {
                Some(n) => {
                    for name in cols.iter().take(n) {
                        let r = self.push(name.as_str())?;
                        self.push_column(
                            ColumnName::Named(r),
                            1u64 << idx,
                            0,
                            true,
                            Clause::Other,
                        )?;
                        if class == StatementClass::CopyOut {
                            self.mark_last_plain();
                        }
                    }
                }
                None => {
                    self.push_column(ColumnName::All, 1u64 << idx, 0, true, Clause::Other)?;
                    // `COPY t TO STDOUT` sends the table's columns as they are.
                    if class == StatementClass::CopyOut {
                        self.mark_last_plain();
                    }
                }
            }
            target = Some((self.name_of(&c.last())?, q));
        } else {
            // Every read of the query is also a read under the COPY's class.
            self.mirror_reads(mark_tables, mark_cols, class)?;
        }
        // Options: `[WITH] (opts)` or the old `BINARY|CSV|HEADER|DELIMITER 'x'…` words.
        self.eat_kw(Kw::With);
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        loop {
            let t = self.peek();
            if t.is(Kw::Where) {
                self.next();
                let Some((name, q)) = target.filter(|_| from) else {
                    return Err(Fail("COPY TO … WHERE"));
                };
                // The rows loaded are filtered on the target's columns: reads of it.
                self.scopes.push_level();
                self.scopes.add(
                    name,
                    EntryKind::Base {
                        read: None,
                        name: q,
                        alts: 0,
                    },
                )?;
                let r = self.expr(Clause::Where);
                self.scopes.pop_level();
                r?;
                continue;
            }
            match t.kind {
                Kind::Eof => return Ok(()),
                Kind::Ident | Kind::Str(_) | Kind::Number | Kind::QuotedIdent | Kind::Comma => {
                    self.next();
                }
                Kind::Op if t.is_op(self.sql, "*") || t.is_op(self.sql, "-") => {
                    self.next();
                }
                Kind::LParen => self.skip_parens()?,
                _ => return Err(Fail("COPY options not understood")),
            }
        }
    }

    /// For every `select` access made since `mark_tables`, adds an access under `class`
    /// to the same table, and widens the candidate masks of the columns since `mark_cols`.
    pub(super) fn mirror_reads(
        &mut self,
        mark_tables: usize,
        mark_cols: usize,
        class: StatementClass,
    ) -> R<()> {
        let end = self.facts.current_table_count();
        let mut map = [0u64; 64];
        for i in mark_tables..end {
            if let Some(a) = self.facts.current_table(i)
                && a.class == StatementClass::Select
            {
                let j = self.push_access(class, a.name)?;
                if let Some(m) = map.get_mut(i) {
                    *m = 1u64 << j;
                }
            }
        }
        for c in self.facts.current_columns_mut().iter_mut().skip(mark_cols) {
            let (mut cand, mut whole) = (c.candidates, c.whole_row);
            for (i, m) in map.iter().enumerate() {
                if c.candidates & (1u64 << i) != 0 {
                    cand |= m;
                }
                if c.whole_row & (1u64 << i) != 0 {
                    whole |= m;
                }
            }
            c.candidates = cand;
            c.whole_row = whole;
        }
        Ok(())
    }
}
