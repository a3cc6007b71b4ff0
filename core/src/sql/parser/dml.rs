//! DML: INSERT, UPDATE, DELETE and MERGE, their targets, SET lists and RETURNING.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// A DML target: `[ONLY] name [*] [[AS] alias]`; pushes the write access and adds the
    /// scope entry (reads created lazily). Returns (write access, scope entry).
    pub(super) fn dml_target(
        &mut self,
        class: StatementClass,
        no_bare: &[Kw],
        add_now: bool,
    ) -> R<(u8, Name, QualifiedName)> {
        let paren = if self.eat_kw(Kw::Only) {
            self.eat(Kind::LParen)
        } else {
            false
        };
        let c = self.chain(false)?;
        if paren {
            self.expect(Kind::RParen)?;
        }
        self.eat_op("*");
        let q = self.resolve_table(&c)?;
        let w = self.push_access(class, q)?;
        let alias = if class == StatementClass::Insert {
            // INSERT's alias needs AS.
            if self.eat_kw(Kw::As) {
                Some(self.any_name_token()?)
            } else {
                None
            }
        } else {
            self.alias(no_bare)?
        };
        let name = match alias {
            Some(a) => a,
            None => self.name_of(&c.last())?,
        };
        if add_now {
            self.scopes.add(
                name,
                EntryKind::Base {
                    read: None,
                    name: q,
                    alts: 0,
                },
            )?;
        }
        Ok((w, name, q))
    }

    pub(super) fn insert(&mut self) -> R<()> {
        self.expect_kw(Kw::Insert)?;
        self.expect_kw(Kw::Into)?;
        let (w, name, q) = self.dml_target(StatementClass::Insert, &[], false)?;
        // Column list (or all columns).
        let mut listed = false;
        if self.at(Kind::LParen) && self.paren_starts_query()? == Some(false) {
            self.next();
            listed = true;
            loop {
                let n = self.any_name_token()?;
                // `col.field` / `col[1]` target the column `col`.
                loop {
                    if self.eat(Kind::Dot) {
                        self.any_name_token()?;
                    } else if self.at(Kind::LBracket) {
                        self.subscript(Clause::InsertColumns)?;
                    } else {
                        break;
                    }
                }
                let r = self.push(n.as_str())?;
                self.push_column(
                    ColumnName::Named(r),
                    1u64 << w,
                    0,
                    true,
                    Clause::InsertColumns,
                )?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        if !listed {
            self.push_column(ColumnName::All, 1u64 << w, 0, true, Clause::InsertColumns)?;
        }
        if self.eat_kw(Kw::Overriding) {
            if !self.eat_kw(Kw::System) {
                self.expect_kw(Kw::User)?;
            }
            self.expect_kw(Kw::Value)?;
        }
        if self.at_kw(Kw::Default) {
            self.next();
            self.expect_kw(Kw::Values)?;
        } else {
            self.query()?;
        }
        // The target is visible from here on (ON CONFLICT, RETURNING), not in the source.
        self.scopes.add(
            name,
            EntryKind::Base {
                read: None,
                name: q,
                alts: 0,
            },
        )?;
        if self.at_kw(Kw::On) {
            self.next();
            self.expect_kw(Kw::Conflict)?;
            self.scopes
                .add(Name::from_str_truncated("excluded"), EntryKind::Derived)?;
            if self.eat_kw(Kw::On) {
                self.expect_kw(Kw::Constraint)?;
                self.any_name_token()?;
            } else if self.eat(Kind::LParen) {
                loop {
                    self.expr(Clause::Other)?;
                    if self.eat_kw(Kw::Collate) {
                        self.chain(false)?;
                    }
                    let t = self.peek();
                    if t.is_name() && !self.is_reserved(&t) {
                        self.chain(false)?; // operator class
                    }
                    let _ = self.eat_kw(Kw::Asc) || self.eat_kw(Kw::Desc);
                    if self.eat_kw(Kw::Nulls) && !self.eat_kw(Kw::First) {
                        self.expect_kw(Kw::Last)?;
                    }
                    if !self.eat(Kind::Comma) {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
                if self.eat_kw(Kw::Where) {
                    self.expr(Clause::Where)?;
                }
            }
            self.expect_kw(Kw::Do)?;
            if !self.eat_kw(Kw::Nothing) {
                self.expect_kw(Kw::Update)?;
                self.class(StatementClass::Update);
                let u = self.push_access(StatementClass::Update, q)?;
                self.expect_kw(Kw::Set)?;
                self.set_list(u)?;
                if self.eat_kw(Kw::Where) {
                    self.expr(Clause::Where)?;
                }
            }
        }
        self.returning()
    }

    /// `RETURNING [WITH (OLD|NEW AS name, …)] targets`
    pub(super) fn returning(&mut self) -> R<()> {
        if !self.eat_kw(Kw::Returning) {
            return Ok(());
        }
        if self.at_kw(Kw::With) && self.peek_n(1).kind == Kind::LParen {
            self.next();
            self.next();
            loop {
                let _ = self.eat_kw(Kw::Old) || self.eat_kw(Kw::New);
                self.expect_kw(Kw::As)?;
                self.any_name_token()?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        self.target_list(Clause::Returning, false)
    }

    /// `col = expr | (cols) = (exprs) | (cols) = ROW(…) | (cols) = (subquery), …`
    pub(super) fn set_list(&mut self, target: u8) -> R<()> {
        loop {
            if self.eat(Kind::LParen) {
                loop {
                    self.set_target(target)?;
                    if !self.eat(Kind::Comma) {
                        break;
                    }
                }
                self.expect(Kind::RParen)?;
            } else {
                self.set_target(target)?;
            }
            if !self.eat_op("=") {
                return Err(Fail("expected = in SET"));
            }
            self.expr(Clause::UpdateSet)?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    pub(super) fn set_target(&mut self, target: u8) -> R<()> {
        let n = self.any_name_token()?;
        loop {
            if self.at(Kind::Dot) {
                self.next();
                self.any_name_token()?;
            } else if self.at(Kind::LBracket) {
                self.subscript(Clause::UpdateSet)?;
            } else {
                break;
            }
        }
        let r = self.push(n.as_str())?;
        self.push_column(
            ColumnName::Named(r),
            1u64 << target,
            0,
            true,
            Clause::UpdateSet,
        )?;
        // A column written reads nothing.
        self.mark_last_plain();
        Ok(())
    }

    pub(super) fn update(&mut self) -> R<()> {
        self.expect_kw(Kw::Update)?;
        let (w, _, _) = self.dml_target(StatementClass::Update, &[Kw::Set], true)?;
        self.expect_kw(Kw::Set)?;
        let set_start = self.save();
        self.skip_to_clause(&[Kw::From, Kw::Where, Kw::Returning])?;
        let set_end = self.peek().start;
        if self.eat_kw(Kw::From) {
            self.table_list()?;
        }
        let after = self.save();
        self.restore(set_start);
        self.set_list(w)?;
        if self.peek().start != set_end {
            return Err(Fail("SET list not understood"));
        }
        self.restore(after);
        self.where_clause()?;
        self.returning()
    }

    pub(super) fn where_clause(&mut self) -> R<()> {
        if self.eat_kw(Kw::Where) {
            if self.at_kw(Kw::Current) && self.at_kw_n(1, Kw::Of) {
                self.next();
                self.next();
                self.any_name_token()?;
                return Ok(());
            }
            self.expr(Clause::Where)?;
        }
        Ok(())
    }

    pub(super) fn delete(&mut self) -> R<()> {
        self.expect_kw(Kw::Delete)?;
        self.expect_kw(Kw::From)?;
        self.dml_target(StatementClass::Delete, &[], true)?;
        if self.eat_kw(Kw::Using) {
            self.table_list()?;
        }
        self.where_clause()?;
        self.returning()
    }

    pub(super) fn merge(&mut self) -> R<()> {
        self.expect_kw(Kw::Merge)?;
        self.expect_kw(Kw::Into)?;
        let (w, _, _) = self.dml_target(StatementClass::Merge, &[], true)?;
        self.expect_kw(Kw::Using)?;
        self.table_item()?;
        self.expect_kw(Kw::On)?;
        self.expr(Clause::Join)?;
        let mut any = false;
        while self.eat_kw(Kw::When) {
            any = true;
            self.eat_kw(Kw::Not);
            self.expect_kw(Kw::Matched)?;
            if self.eat_kw(Kw::By) && !self.eat_kw(Kw::Source) {
                self.expect_kw(Kw::Target)?;
            }
            if self.eat_kw(Kw::And) {
                self.expr(Clause::Where)?;
            }
            self.expect_kw(Kw::Then)?;
            if self.eat_kw(Kw::Update) {
                self.expect_kw(Kw::Set)?;
                self.set_list(w)?;
            } else if self.eat_kw(Kw::Delete) {
            } else if self.eat_kw(Kw::Insert) {
                if self.at(Kind::LParen) {
                    self.next();
                    loop {
                        self.set_target(w)?;
                        if !self.eat(Kind::Comma) {
                            break;
                        }
                    }
                    self.expect(Kind::RParen)?;
                } else {
                    self.push_column(ColumnName::All, 1u64 << w, 0, true, Clause::InsertColumns)?;
                }
                if self.eat_kw(Kw::Overriding) {
                    if !self.eat_kw(Kw::System) {
                        self.expect_kw(Kw::User)?;
                    }
                    self.expect_kw(Kw::Value)?;
                }
                if self.eat_kw(Kw::Default) {
                    self.expect_kw(Kw::Values)?;
                } else {
                    self.expect_kw(Kw::Values)?;
                    self.expect(Kind::LParen)?;
                    self.expr_list_until_rparen(Clause::Other)?;
                }
            } else {
                self.expect_kw(Kw::Do)?;
                self.expect_kw(Kw::Nothing)?;
            }
        }
        if !any {
            return Err(Fail("MERGE without WHEN"));
        }
        self.returning()
    }
}
