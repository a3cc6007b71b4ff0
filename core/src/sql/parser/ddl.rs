//! DDL and maintenance targets: CREATE, ALTER, DROP, TRUNCATE, LOCK, CALL.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `TRUNCATE [TABLE] [ONLY] name [*], … [RESTART|CONTINUE IDENTITY] [CASCADE|RESTRICT]`
    pub(super) fn truncate(&mut self) -> R<()> {
        self.expect_kw(Kw::Truncate)?;
        self.class(StatementClass::Truncate);
        self.eat_kw(Kw::Table);
        self.table_name_list(StatementClass::Truncate)?;
        if self.eat_kw(Kw::Restart) || self.eat_kw(Kw::Continue) {
            self.expect_kw(Kw::Identity)?;
        }
        let _ = self.eat_kw(Kw::Cascade) || self.eat_kw(Kw::Restrict);
        Ok(())
    }

    pub(super) fn table_name_list(&mut self, class: StatementClass) -> R<()> {
        loop {
            self.eat_kw(Kw::Only);
            let c = self.chain(false)?;
            self.eat_op("*");
            let q = self.resolve_table(&c)?;
            self.push_access(class, q)?;
            if !self.eat(Kind::Comma) {
                return Ok(());
            }
        }
    }

    /// `LOCK [TABLE] [ONLY] name [*], … [IN mode MODE] [NOWAIT]`
    pub(super) fn lock(&mut self) -> R<()> {
        self.expect_kw(Kw::Lock)?;
        self.class(StatementClass::Lock);
        self.eat_kw(Kw::Table);
        self.table_name_list(StatementClass::Lock)?;
        if self.eat_kw(Kw::In) {
            loop {
                if self.eat_kw(Kw::Mode) {
                    break;
                }
                let t = self.next();
                if t.kind != Kind::Ident {
                    return Err(Fail("bad lock mode"));
                }
            }
        }
        self.eat_kw(Kw::Nowait);
        Ok(())
    }

    /// `CALL name(args)`: the procedure is recorded as a function call.
    pub(super) fn call(&mut self) -> R<()> {
        self.expect_kw(Kw::Call)?;
        self.class(StatementClass::Call);
        let c = self.chain(false)?;
        self.function_call(&c, Clause::Other)
    }

    pub(super) fn create(&mut self) -> R<()> {
        self.expect_kw(Kw::Create)?;
        if self.eat_kw(Kw::Or) {
            self.expect_kw(Kw::Replace)?;
        }
        let _ = self.eat_kw(Kw::Global) || self.eat_kw(Kw::Local);
        let _ = self.eat_kw(Kw::Temporary) || self.eat_kw(Kw::Temp) || self.eat_kw(Kw::Unlogged);
        if self.at_kw(Kw::Table) {
            self.next();
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Not)?;
                self.expect_kw(Kw::Exists)?;
            }
            return self.create_table_like(false);
        }
        if self.at_kw(Kw::Materialized) {
            self.next();
            self.expect_kw(Kw::View)?;
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Not)?;
                self.expect_kw(Kw::Exists)?;
            }
            return self.create_table_like(true);
        }
        if self.at_kw(Kw::Role)
            || self.at_kw(Kw::Group)
            || (self.at_kw(Kw::User) && !self.at_kw_n(1, Kw::Mapping))
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        if self.at_kw(Kw::Unique) || self.at_kw(Kw::Index) {
            self.class(StatementClass::Ddl);
            // … ON [ONLY] table …
            loop {
                let t = self.next();
                if t.kind == Kind::Eof {
                    return Ok(());
                }
                if t.is(Kw::On) {
                    self.eat_kw(Kw::Only);
                    let c = self.chain(false)?;
                    let q = self.resolve_table(&c)?;
                    self.push_access(StatementClass::Ddl, q)?;
                    return self.rest();
                }
            }
        }
        self.class(StatementClass::Ddl);
        self.rest()
    }

    /// After `CREATE … TABLE [IF NOT EXISTS]` / `CREATE MATERIALIZED VIEW …`: either
    /// `… AS query` (select-into: the new table is written from the query's reads) or a
    /// plain definition (ddl).
    pub(super) fn create_table_like(&mut self, matview: bool) -> R<()> {
        let c = self.chain(false)?;
        let q = self.creation_name(&c)?;
        // Find `AS` at depth 0 followed by a query or EXECUTE.
        let mut depth = 0u32;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof => {
                    if matview {
                        return Err(Fail("materialized view without AS"));
                    }
                    self.class(StatementClass::Ddl);
                    self.push_access(StatementClass::Ddl, q)?;
                    return Ok(());
                }
                Kind::LParen => depth += 1,
                Kind::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 && t.is(Kw::As) {
                let n = self.peek_n(1);
                if n.kind == Kind::LParen
                    || [Kw::Select, Kw::Values, Kw::With, Kw::Table, Kw::Execute].contains(&n.kw)
                {
                    self.next();
                    break;
                }
            }
            self.next();
        }
        self.class(StatementClass::SelectInto);
        self.push_access(StatementClass::SelectInto, q)?;
        if self.at_kw(Kw::Execute) {
            self.execute()?;
        } else if self.at(Kind::LParen) {
            self.class(StatementClass::Select);
            self.query()?;
        } else {
            let c = self.dml_or_query()?;
            self.class(c);
        }
        if self.eat_kw(Kw::With) {
            self.eat_kw(Kw::No);
            self.expect_kw(Kw::Data)?;
        }
        Ok(())
    }

    pub(super) fn alter(&mut self) -> R<()> {
        self.expect_kw(Kw::Alter)?;
        if self.at_kw(Kw::Role)
            || self.at_kw(Kw::Group)
            || (self.at_kw(Kw::User) && !self.at_kw_n(1, Kw::Mapping))
            || (self.at_kw(Kw::Default) && self.at_kw_n(1, Kw::Privileges))
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        self.class(StatementClass::Ddl);
        if self.eat_kw(Kw::Table) {
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Exists)?;
            }
            if self.at_kw(Kw::All) {
                return self.rest();
            }
            self.eat_kw(Kw::Only);
            let c = self.chain(false)?;
            let q = self.resolve_table(&c)?;
            self.push_access(StatementClass::Ddl, q)?;
        }
        self.rest()
    }

    pub(super) fn drop(&mut self) -> R<()> {
        self.expect_kw(Kw::Drop)?;
        if self.at_kw(Kw::Role)
            || self.at_kw(Kw::Group)
            || self.at_kw(Kw::Owned)
            || (self.at_kw(Kw::User) && !self.at_kw_n(1, Kw::Mapping))
        {
            self.class(StatementClass::Dcl);
            return self.rest();
        }
        self.class(StatementClass::Ddl);
        if self.eat_kw(Kw::Table) {
            if self.at_kw(Kw::If) {
                self.next();
                self.expect_kw(Kw::Exists)?;
            }
            loop {
                let c = self.chain(false)?;
                let q = self.resolve_table(&c)?;
                self.push_access(StatementClass::Ddl, q)?;
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
        }
        self.rest()
    }
}
