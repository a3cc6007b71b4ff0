//! Session statements: EXPLAIN, PREPARE / EXECUTE, cursors (DECLARE, FETCH, MOVE, CLOSE), LISTEN / NOTIFY.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `EXPLAIN [(opts)] | [ANALYZE] [VERBOSE] stmt`
    pub(super) fn explain(&mut self) -> R<()> {
        self.expect_kw(Kw::Explain)?;
        let mut analyze = false;
        if self.at(Kind::LParen) {
            self.next();
            loop {
                let opt = self.any_name_token()?;
                let is_analyze = matches!(opt.as_str(), "analyze" | "analyse");
                let mut value = true;
                if !(self.at(Kind::Comma) || self.at(Kind::RParen)) {
                    let v = self.next();
                    let txt = self.text(&v).to_ascii_lowercase_fixed();
                    if matches!(
                        txt.as_str(),
                        "false" | "off" | "0" | "'false'" | "'off'" | "'0'"
                    ) {
                        value = false;
                    }
                }
                if is_analyze && value {
                    analyze = true;
                }
                if !self.eat(Kind::Comma) {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        } else {
            if self.eat_kw(Kw::Analyze) || self.eat_kw(Kw::Analyse) {
                analyze = true;
            }
            self.eat_kw(Kw::Verbose);
        }
        if analyze {
            self.flags |= StatementFlags::EXPLAIN_ANALYZE;
        } else {
            self.class(StatementClass::Utility);
        }
        self.inner_statement()
    }

    /// The statement inside EXPLAIN / PREPARE: a query, DML, EXECUTE, DECLARE or CREATE
    /// TABLE AS / MATERIALIZED VIEW.
    pub(super) fn inner_statement(&mut self) -> R<()> {
        let t = self.peek();
        if t.is(Kw::Execute) {
            return self.execute();
        }
        if t.is(Kw::Declare) {
            return self.declare();
        }
        if t.is(Kw::Create) {
            return self.create();
        }
        self.preparable()
    }

    /// A query or DML statement standing inside another (`PREPARE … AS`, EXPLAIN),
    /// with its class: `(query)` or `[WITH …] SELECT/VALUES/TABLE/INSERT/…`.
    pub(super) fn preparable(&mut self) -> R<()> {
        if self.at(Kind::LParen) {
            self.class(StatementClass::Select);
            return self.query();
        }
        // A prepared statement's rows reach the client (EXECUTE); EXPLAIN's name no
        // values.
        self.output_level = self.scopes.level.saturating_add(1);
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }

    /// `PREPARE name [(types)] AS stmt`
    pub(super) fn prepare(&mut self) -> R<()> {
        self.expect_kw(Kw::Prepare)?;
        self.class(StatementClass::Prepare);
        self.flags |= StatementFlags::PREPARES;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        self.expect_kw(Kw::As)?;
        self.preparable()
    }

    /// `EXECUTE name [(params)]`: the caller resolves `name`.
    pub(super) fn execute(&mut self) -> R<()> {
        self.expect_kw(Kw::Execute)?;
        self.class(StatementClass::Prepare);
        self.flags |= StatementFlags::EXECUTES_PREPARED;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        if self.eat(Kind::LParen) {
            self.expr_list_until_rparen(Clause::Other)?;
        }
        Ok(())
    }

    /// `FETCH [direction] [FROM|IN] name`, `MOVE …` (the same), `CLOSE {name|ALL}`: the
    /// cursor name is the statement's last token, recorded in `prepared_name` (empty for
    /// `CLOSE ALL`, or when the last token is no name: the server rejects those).
    pub(super) fn cursor_use(&mut self, kw: Kw) -> R<()> {
        self.next();
        self.class(StatementClass::Cursor);
        self.flags |= if kw == Kw::Close {
            StatementFlags::CLOSES_CURSOR
        } else {
            StatementFlags::USES_CURSOR
        };
        let mut last = None;
        let mut count = 0u32;
        loop {
            let t = self.next();
            if t.kind == Kind::Eof {
                break;
            }
            count += 1;
            last = Some(t);
        }
        match last {
            Some(t)
                if kw == Kw::Close && count == 1 && t.kind == Kind::Ident && t.kw == Kw::All => {}
            Some(t) if t.is_name() => self.prepared_name = self.push_tok(&t)?,
            _ => {}
        }
        Ok(())
    }

    /// `LISTEN channel`, `UNLISTEN {channel|*}`: the channel in `prepared_name` (empty for
    /// `UNLISTEN *`).
    pub(super) fn listen(&mut self, kw: Kw) -> R<()> {
        self.next();
        self.class(StatementClass::Notify);
        if kw == Kw::Listen {
            self.flags |= StatementFlags::LISTENS;
        } else {
            self.flags |= StatementFlags::UNLISTENS;
        }
        let t = self.peek();
        if t.is_name() {
            self.next();
            self.prepared_name = self.push_tok(&t)?;
        }
        self.rest()
    }

    /// `DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`
    pub(super) fn declare(&mut self) -> R<()> {
        self.expect_kw(Kw::Declare)?;
        self.class(StatementClass::Cursor);
        self.flags |= StatementFlags::DECLARES_CURSOR;
        let n = self.any_name_token()?;
        self.prepared_name = self.push(n.as_str())?;
        loop {
            if self.eat_kw(Kw::Cursor) {
                break;
            }
            let t = self.next();
            if ![
                Kw::Binary,
                Kw::Asensitive,
                Kw::Insensitive,
                Kw::No,
                Kw::Scroll,
            ]
            .contains(&t.kw)
            {
                return Err(Fail("DECLARE not understood"));
            }
        }
        if self.eat_kw(Kw::With) {
            self.expect_kw(Kw::Hold)?;
            self.flags |= StatementFlags::HOLDS_CURSOR;
        } else if self.eat_kw(Kw::Without) {
            self.expect_kw(Kw::Hold)?;
        }
        self.expect_kw(Kw::For)?;
        if self.at(Kind::LParen) {
            self.class(StatementClass::Select);
            return self.query();
        }
        // The cursor's rows reach the client (FETCH).
        self.output_level = self.scopes.level.saturating_add(1);
        let c = self.dml_or_query()?;
        self.class(c);
        Ok(())
    }
}
