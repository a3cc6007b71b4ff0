//! FROM and joins: table references, aliases and alias column lists, functions in FROM, join conditions.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    pub(super) fn table_list(&mut self) -> R<()> {
        loop {
            self.table_item()?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    pub(super) fn table_item(&mut self) -> R<()> {
        self.enter()?;
        let mark = self.scopes.len();
        self.table_primary()?;
        while self.join_step(mark)? {}
        self.leave();
        Ok(())
    }

    /// Whether a join operator (`[NATURAL] [INNER|LEFT|RIGHT|FULL [OUTER]] JOIN`, `CROSS
    /// JOIN`) starts here.
    pub(super) fn at_join(&mut self) -> bool {
        let t = self.peek();
        [
            Kw::Join,
            Kw::Cross,
            Kw::Natural,
            Kw::Inner,
            Kw::Left,
            Kw::Right,
            Kw::Full,
        ]
        .contains(&t.kw)
    }

    /// One join operator, its right operand and its qualifier. PostgreSQL's grammar lets
    /// the right operand be a join itself whose qualifier comes first
    /// (`a LEFT JOIN b FULL JOIN c ON x ON y`), so the right side takes further joins
    /// until this join's ON/USING.
    pub(super) fn join_step(&mut self, left_mark: usize) -> R<bool> {
        if !self.at_join() {
            return Ok(false);
        }
        self.enter()?;
        if self.eat_kw(Kw::Cross) {
            self.expect_kw(Kw::Join)?;
            self.table_primary()?;
            self.leave();
            return Ok(true);
        }
        let natural = self.eat_kw(Kw::Natural);
        if !self.eat_kw(Kw::Inner)
            && (self.eat_kw(Kw::Left) || self.eat_kw(Kw::Right) || self.eat_kw(Kw::Full))
        {
            self.eat_kw(Kw::Outer);
        }
        self.expect_kw(Kw::Join)?;
        let right_mark = self.scopes.len();
        self.table_primary()?;
        if natural {
            // NATURAL JOIN compares the columns both sides have. With a side whose columns
            // are not a table's (a subquery, a function), any column of the other side
            // may be one of them.
            let (left, left_opaque) = self.join_side(left_mark, right_mark)?;
            let (right, right_opaque) = self.join_side(right_mark, self.scopes.len())?;
            if left_opaque || right_opaque {
                self.push_column(ColumnName::All, left | right, 0, false, Clause::Join)?;
            } else {
                self.push_column(ColumnName::Common { right }, left, 0, false, Clause::Join)?;
            }
            self.leave();
            return Ok(true);
        }
        while !self.at_kw(Kw::On) && !self.at_kw(Kw::Using) && self.join_step(right_mark)? {}
        if self.eat_kw(Kw::On) {
            self.expr(Clause::Join)?;
        } else if self.eat_kw(Kw::Using) {
            // `USING (c)` compares the column `c` of each side.
            self.expect(Kind::LParen)?;
            let (left, _) = self.join_side(left_mark, right_mark)?;
            let (right, _) = self.join_side(right_mark, self.scopes.len())?;
            loop {
                let n = self.any_name_token()?;
                let r = self.push(n.as_str())?;
                self.push_column(ColumnName::Named(r), left | right, 0, false, Clause::Join)?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
            if self.eat_kw(Kw::As) {
                let a = self.any_name_token()?;
                self.scopes.add(a, EntryKind::Derived)?;
            }
        } else {
            return Err(Fail("JOIN without ON/USING"));
        }
        self.leave();
        Ok(true)
    }

    /// One side of a join: the base-table accesses of the scope entries `from..to` of this
    /// level, and whether the side also has columns that are not a table's (a derived
    /// table or function, a table renamed by an alias column list).
    pub(super) fn join_side(&mut self, from: usize, to: usize) -> R<(u64, bool)> {
        let level = self.scopes.level;
        let (mut bits, mut opaque) = (0u64, false);
        for i in from..to {
            let Some(e) = self.scopes.get(i) else { break };
            if e.level != level {
                continue;
            }
            let (kind, renamed) = (e.kind, e.renamed);
            match kind {
                EntryKind::Base { .. } => bits |= self.base_bits(i)?,
                // A join alias's tables are entries of this side already.
                EntryKind::Join { .. } => {}
                EntryKind::Derived => opaque = true,
            }
            opaque |= renamed.is_some();
        }
        Ok((bits, opaque))
    }

    /// `[AS] alias [(cols)]`; returns the alias if there is one. `no_bare` lists words that
    /// must not be taken as a bare alias in this position (e.g. `SET` after UPDATE's target).
    pub(super) fn alias(&mut self, no_bare: &[Kw]) -> R<Option<Name>> {
        let name = if self.eat_kw(Kw::As) {
            Some(self.any_name_token()?)
        } else {
            let t = self.peek();
            let bare = match t.kind {
                Kind::QuotedIdent | Kind::UnicodeIdent => true,
                Kind::Ident => !self.is_reserved(&t) && !no_bare.contains(&t.kw),
                _ => false,
            };
            if bare {
                self.next();
                Some(self.name_of(&t)?)
            } else {
                None
            }
        };
        self.alias_renamed = None;
        if name.is_some() && self.at(Kind::LParen) {
            let start = self.cur as u32;
            self.skip_parens()?;
            self.alias_renamed = Some((start, self.cur as u32));
        }
        Ok(name)
    }

    pub(super) fn table_primary(&mut self) -> R<()> {
        self.eat_kw(Kw::Lateral);
        let t = self.peek();
        if t.kind == Kind::LParen {
            // `(query) alias` or `(joined tables) [alias]`; `((…` can be either.
            fn derived(p: &mut Parser<'_, '_, '_>) -> R<()> {
                p.next();
                p.query()?;
                p.expect(Kind::RParen)?;
                if let Some(a) = p.alias(&[])? {
                    p.scopes.add(a, EntryKind::Derived)?;
                }
                Ok(())
            }
            fn joined(p: &mut Parser<'_, '_, '_>) -> R<()> {
                p.next();
                let mark = p.scopes.len();
                p.table_item()?;
                p.expect(Kind::RParen)?;
                if let Some(a) = p.alias(&[])? {
                    // `j.c` is a column of one of the joined tables: checked on all of
                    // them (a join alias is not a derived table checked inside).
                    let renamed = p.alias_renamed;
                    let mut reads = 0u64;
                    for i in mark..p.scopes.len() {
                        reads |= p.entry_bits(i)?;
                    }
                    let i = p.scopes.add(a, EntryKind::Join { reads })?;
                    p.scopes.set_renamed(i, renamed);
                }
                Ok(())
            }
            return match self.paren_starts_query()? {
                Some(true) => derived(self),
                Some(false) => joined(self),
                None => self.either(derived, joined),
            };
        }
        if t.is(Kw::Rows) && self.at_kw_n(1, Kw::From) {
            self.next();
            self.next();
            self.expect(Kind::LParen)?;
            loop {
                let c = self.chain(false)?;
                self.function_call(&c, Clause::Other)?;
                if self.eat_kw(Kw::As) {
                    self.skip_parens()?;
                }
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
            self.func_alias()?;
            return Ok(());
        }
        if t.is(Kw::Only) {
            self.next();
            let paren = self.eat(Kind::LParen);
            let c = self.chain(false)?;
            if paren {
                self.expect(Kind::RParen)?;
            }
            return self.table_ref(&c);
        }
        if !t.is_name() {
            return Err(Fail("expected a FROM item"));
        }
        let c = self.chain(false)?;
        if self.at(Kind::LParen) {
            self.function_call(&c, Clause::Other)?;
            self.func_alias()?;
            return Ok(());
        }
        if c.n == 1 && c.first_kw.is_reserved() {
            return Err(Fail("reserved keyword in FROM"));
        }
        self.table_ref(&c)
    }

    /// `[WITH ORDINALITY] [[AS] alias [(coldefs)] | AS (coldefs)]` after a function in FROM.
    pub(super) fn func_alias(&mut self) -> R<()> {
        if self.at_kw(Kw::With) && self.at_kw_n(1, Kw::Ordinality) {
            self.next();
            self.next();
        }
        if self.at_kw(Kw::As) && self.peek_n(1).kind == Kind::LParen {
            self.next();
            self.skip_parens()?;
            return Ok(());
        }
        if let Some(a) = self.alias(&[])? {
            self.scopes.add(a, EntryKind::Derived)?;
        }
        Ok(())
    }

    /// A relation in FROM (or a CTE reference): `name [*] [alias] [TABLESAMPLE …]`.
    pub(super) fn table_ref(&mut self, c: &Chain) -> R<()> {
        self.eat_op("*");
        let alias = self.alias(&[])?;
        let renamed = self.alias_renamed;
        let tname = self.name_of(&c.last())?;
        let entry_name = alias.unwrap_or(tname);
        // Read before the relation enters the scope: PostgreSQL transforms the sampling
        // arguments before it adds the relation to the namespace
        // (`transformRangeTableSample`), so they cannot name its columns.
        if self.eat_kw(Kw::Tablesample) {
            let m = self.chain(false)?;
            self.function_call(&m, Clause::Other)?;
            if self.eat_kw(Kw::Repeatable) {
                self.expect(Kind::LParen)?;
                self.expr_list_until_rparen(Clause::Other)?;
            }
        }
        if c.n == 1 && self.scopes.is_cte(&tname) {
            self.scopes.add(entry_name, EntryKind::Derived)?;
        } else {
            let (r, q, reads) = self.read_access(c)?;
            let i = self.scopes.add(
                entry_name,
                EntryKind::Base {
                    read: Some(r),
                    name: q,
                    alts: reads & !(1u64 << r),
                },
            )?;
            self.scopes.set_renamed(i, renamed);
        }
        Ok(())
    }
}
