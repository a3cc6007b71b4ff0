//! Operands: literals, column references, subqueries, arrays, subscripts and parenthesised forms.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// A word in operand position. `Some(operand_complete)` when consumed, `None` when it
    /// ends the expression.
    pub(super) fn operand_word(
        &mut self,
        clause: Clause,
        case_depth: &mut u32,
        lenient: bool,
    ) -> R<Option<bool>> {
        let t = self.peek();
        let next = self.peek_n(1);
        if t.kind == Kind::Ident {
            let paren = next.kind == Kind::LParen;
            match t.kw {
                Kw::Null
                | Kw::True
                | Kw::False
                | Kw::CurrentDate
                | Kw::CurrentRole
                | Kw::CurrentUser
                | Kw::SessionUser
                | Kw::User
                | Kw::SystemUser
                | Kw::CurrentCatalog
                | Kw::Default => {
                    self.next();
                    return Ok(Some(true));
                }
                Kw::CurrentTime
                | Kw::CurrentTimestamp
                | Kw::Localtime
                | Kw::Localtimestamp
                | Kw::CurrentSchema => {
                    self.next();
                    if paren {
                        self.skip_parens()?;
                    }
                    return Ok(Some(true));
                }
                Kw::Not | Kw::Distinct | Kw::Variadic | Kw::In | Kw::Like | Kw::Ilike => {
                    self.next();
                    return Ok(Some(false));
                }
                Kw::All if !paren => {
                    self.next();
                    return Ok(Some(false));
                }
                Kw::Between => {
                    self.next();
                    let _ = self.eat_kw(Kw::Symmetric) || self.eat_kw(Kw::Asymmetric);
                    return Ok(Some(false));
                }
                Kw::Similar => {
                    self.next();
                    self.expect_kw(Kw::To)?;
                    return Ok(Some(false));
                }
                Kw::Case => {
                    self.next();
                    *case_depth += 1;
                    return Ok(Some(false));
                }
                Kw::When | Kw::Then | Kw::Else if *case_depth > 0 => {
                    self.next();
                    return Ok(Some(false));
                }
                Kw::Cast | Kw::Treat if paren => {
                    self.next();
                    self.next();
                    self.expr(clause)?;
                    self.expect_kw(Kw::As)?;
                    self.type_name()?;
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                Kw::Exists if paren => {
                    self.next();
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                Kw::Array if paren || next.kind == Kind::LBracket => {
                    self.next();
                    if paren {
                        self.paren_expr(clause, lenient)?;
                    } else {
                        self.array_literal(clause)?;
                    }
                    return Ok(Some(true));
                }
                Kw::Any
                | Kw::Some
                | Kw::All
                | Kw::Row
                | Kw::Grouping
                | Kw::Coalesce
                | Kw::Greatest
                | Kw::Least
                | Kw::Nullif
                    if paren =>
                {
                    self.next();
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                Kw::Extract if paren => {
                    // EXTRACT(field FROM expr): the field is a keyword or string.
                    self.next();
                    self.next();
                    self.push_function_str("extract")?;
                    let f = self.next();
                    if !(f.is_name() || f.is_string()) {
                        return Err(Fail("bad EXTRACT"));
                    }
                    self.expect_kw(Kw::From)?;
                    self.expr(clause)?;
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                Kw::Normalize if paren => {
                    self.next();
                    self.next();
                    self.push_function_str("normalize")?;
                    self.expr(clause)?;
                    if self.eat(Kind::Comma) {
                        self.any_name_token()?;
                    }
                    self.expect(Kind::RParen)?;
                    return Ok(Some(true));
                }
                Kw::Interval if next.is_string() || paren => {
                    self.next();
                    if paren {
                        self.skip_parens()?;
                    }
                    if !self.peek().is_string() {
                        return Err(Fail("bad interval literal"));
                    }
                    self.next();
                    self.interval_fields()?;
                    return Ok(Some(true));
                }
                Kw::Timestamp | Kw::Time
                    if paren || next.is_string() || next.is(Kw::With) || next.is(Kw::Without) =>
                {
                    // Typed literal: TIME[STAMP] [(p)] [WITH[OUT] TIME ZONE] 'literal'.
                    self.next();
                    if paren {
                        self.skip_parens()?;
                    }
                    if self.eat_kw(Kw::With) || self.eat_kw(Kw::Without) {
                        self.expect_kw(Kw::Time)?;
                        self.expect_kw(Kw::Zone)?;
                    }
                    if !self.peek().is_string() {
                        return Err(Fail("bad typed literal"));
                    }
                    self.next();
                    return Ok(Some(true));
                }
                Kw::Double if next.is(Kw::Precision) => {
                    self.next();
                    self.next();
                    if !self.peek().is_string() {
                        return Err(Fail("bad typed literal"));
                    }
                    self.next();
                    return Ok(Some(true));
                }
                Kw::Collation if next.is(Kw::For) => {
                    // COLLATION FOR (expr)
                    self.next();
                    self.next();
                    self.push_function_str("pg_collation_for")?;
                    self.paren_expr(clause, lenient)?;
                    return Ok(Some(true));
                }
                Kw::Operator if paren => {
                    // Prefix operator `OPERATOR(schema.-) x`.
                    self.next();
                    self.skip_parens()?;
                    return Ok(Some(false));
                }
                _ => {}
            }
            if t.kw.is_reserved() {
                return Ok(None);
            }
            if t.kw.is_type_func_name() && !paren {
                return Ok(None);
            }
            // In lenient (XML/JSON) arguments a syntax word in operand position (`NAME`,
            // `VALUE`, …) is still read as a column: `xmlforest(name, date)` names
            // columns, and over-reporting is the safe side.
        }
        // A name: column reference, function call or typed literal.
        let c = self.chain(true)?;
        if self.at(Kind::LParen) && !c.star {
            self.function_call(&c, clause)?;
            return Ok(Some(true));
        }
        if self.peek().is_string() && !c.star {
            // `type 'literal'` (e.g. date '2020-01-01').
            self.next();
            return Ok(Some(true));
        }
        if self.peek().is_op(self.sql, "=>") {
            // Named argument `name => value`: not a column.
            self.next();
            return Ok(Some(false));
        }
        self.column_ref(&c, clause)?;
        Ok(Some(true))
    }

    pub(super) fn array_literal(&mut self, clause: Clause) -> R<()> {
        self.expect(Kind::LBracket)?;
        self.enter()?;
        loop {
            if self.eat(Kind::RBracket) {
                break;
            }
            if self.eat(Kind::Comma) {
                continue;
            }
            if self.at(Kind::LBracket) {
                self.array_literal(clause)?;
                continue;
            }
            let before = self.peek().start;
            self.expr(clause)?;
            if self.peek().start == before {
                return Err(Fail("bad array literal"));
            }
        }
        self.leave();
        Ok(())
    }

    /// `[i]`, `[a:b]`, `[:b]`, `[a:]`, `[:]` after a column.
    pub(super) fn subscript(&mut self, clause: Clause) -> R<()> {
        self.expect(Kind::LBracket)?;
        loop {
            if self.eat(Kind::RBracket) {
                return Ok(());
            }
            if self.eat(Kind::Colon) {
                continue;
            }
            let before = self.peek().start;
            self.expr(clause)?;
            if self.peek().start == before {
                return Err(Fail("bad subscript"));
            }
        }
    }

    /// Interval qualifiers after an interval literal: `YEAR TO MONTH`, `SECOND(3)`, …
    pub(super) fn interval_fields(&mut self) -> R<()> {
        loop {
            let t = self.peek();
            if [
                Kw::Year,
                Kw::Month,
                Kw::Day,
                Kw::Hour,
                Kw::Minute,
                Kw::Second,
                Kw::To,
            ]
            .contains(&t.kw)
            {
                self.next();
                if self.at(Kind::LParen) && t.is(Kw::Second) {
                    self.skip_parens()?;
                }
                continue;
            }
            return Ok(());
        }
    }

    /// `( … )` in an expression: a subquery, a parenthesised expression or a row.
    pub(super) fn paren_expr(&mut self, clause: Clause, lenient: bool) -> R<()> {
        self.enter()?;
        let r = match self.paren_starts_query()? {
            Some(true) => self.paren_query(),
            Some(false) => self.paren_list(clause, lenient),
            // `((SELECT …) UNION …)` or `((SELECT …)::int + 1)`.
            None => self.either(|p| p.paren_query(), |p| p.paren_list(clause, lenient)),
        };
        self.leave();
        r
    }

    pub(super) fn paren_query(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        self.query()?;
        self.expect(Kind::RParen)?;
        Ok(())
    }

    pub(super) fn paren_list(&mut self, clause: Clause, lenient: bool) -> R<()> {
        self.expect(Kind::LParen)?;
        if self.eat(Kind::RParen) {
            return Ok(());
        }
        loop {
            self.expr_inner(clause, lenient)?;
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }
}
