//! Function calls, their arguments, and type names.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `name(args) [WITHIN GROUP (…)] [FILTER (WHERE …)] [OVER …]`; `name` already read.
    pub(super) fn function_call(&mut self, c: &Chain, clause: Clause) -> R<()> {
        self.enter()?;
        let lenient = c.n == 1 && SPECIAL_SYNTAX_FUNCS.contains(&c.first_kw);
        if !(lenient && c.first_kw == Kw::MergeAction) {
            self.push_function(c)?;
        }
        if self.name_of(&c.last())?.as_str() == "set_config"
            && (c.n == 1 || self.name_of(&c.parts[c.n - 2])?.as_str() == "pg_catalog")
        {
            self.set_config_flags(c)?;
        }
        self.expect(Kind::LParen)?;
        if lenient {
            self.lenient_args(clause)?;
        } else {
            self.func_args(clause)?;
        }
        if self.at_kw(Kw::Within) {
            self.next();
            self.expect_kw(Kw::Group)?;
            self.expect(Kind::LParen)?;
            self.expect_kw(Kw::Order)?;
            self.expect_kw(Kw::By)?;
            self.sort_list(clause)?;
            self.expect(Kind::RParen)?;
        }
        if self.at_kw(Kw::Filter) && self.peek_n(1).kind == Kind::LParen {
            self.next();
            self.next();
            self.expect_kw(Kw::Where)?;
            self.expr(Clause::Where)?;
            self.expect(Kind::RParen)?;
        }
        if self.eat_kw(Kw::Over) {
            if self.at(Kind::LParen) {
                self.window_spec()?;
            } else {
                self.any_name_token()?;
            }
        }
        self.leave();
        Ok(())
    }

    /// Ordinary function arguments, after `(`; consumes `)`.
    pub(super) fn func_args(&mut self, clause: Clause) -> R<()> {
        if self.eat(Kind::RParen) {
            return Ok(());
        }
        if self.peek().is_op(self.sql, "*") && self.peek_n(1).kind == Kind::RParen {
            // count(*): no column.
            self.next();
            self.next();
            return Ok(());
        }
        let _ = self.eat_kw(Kw::Distinct) || self.eat_kw(Kw::All);
        loop {
            let _ = self.eat_kw(Kw::Variadic)
                || self.eat_kw(Kw::Both)
                || self.eat_kw(Kw::Leading)
                || self.eat_kw(Kw::Trailing);
            // Named argument: `name => value` / `name := value`.
            let t = self.peek();
            let n1 = self.peek_n(1);
            if t.is_name() && (n1.is_op(self.sql, "=>") || n1.is_op(self.sql, ":=")) {
                self.next();
                self.next();
            }
            if !self.at_kw(Kw::From) {
                self.expr(clause)?;
            }
            // Separators of the special argument syntaxes (SUBSTRING … FROM … FOR …,
            // OVERLAY … PLACING …, TRIM … FROM …), and aggregate ORDER BY.
            if self.eat(Kind::Comma)
                || self.eat_kw(Kw::From)
                || self.eat_kw(Kw::For)
                || self.eat_kw(Kw::Placing)
            {
                continue;
            }
            if self.at_kw(Kw::Order) {
                self.next();
                self.expect_kw(Kw::By)?;
                self.sort_list(clause)?;
            }
            break;
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    /// Arguments of XML/JSON functions with keyword syntax: read leniently to `)`.
    pub(super) fn lenient_args(&mut self, clause: Clause) -> R<()> {
        loop {
            let t = self.peek();
            match t.kind {
                Kind::RParen => {
                    self.next();
                    return Ok(());
                }
                Kind::Eof => return Err(Fail("unbalanced parentheses")),
                Kind::Comma => {
                    self.next();
                }
                _ => {
                    let before = t.start;
                    self.expr_inner(clause, true)?;
                    if self.peek().start == before {
                        // Something expr could not start with (`=>`, `:` …): skip it.
                        self.next();
                    }
                }
            }
        }
    }

    /// A type name after `::` or `AS` in CAST: skipped (type names are not columns).
    pub(super) fn type_name(&mut self) -> R<()> {
        self.eat_kw(Kw::Setof);
        let t = self.next();
        if !t.is_name() {
            return Err(Fail("expected a type name"));
        }
        match t.kw {
            Kw::Double => {
                self.expect_kw(Kw::Precision)?;
            }
            Kw::Character | Kw::Char | Kw::Nchar | Kw::Bit => {
                self.eat_kw(Kw::Varying);
            }
            Kw::National => {
                if !self.eat_kw(Kw::Character) {
                    self.expect_kw(Kw::Char)?;
                }
                self.eat_kw(Kw::Varying);
            }
            Kw::Interval => {
                self.interval_fields()?;
            }
            _ => {
                while self.at(Kind::Dot) {
                    self.next();
                    if !self.next().is_name() {
                        return Err(Fail("expected a type name"));
                    }
                }
            }
        }
        if self.at(Kind::LParen) {
            self.skip_parens()?;
        }
        if (t.kw == Kw::Timestamp || t.kw == Kw::Time)
            && (self.at_kw(Kw::With) || self.at_kw(Kw::Without))
            && self.at_kw_n(1, Kw::Time)
        {
            self.next();
            self.next();
            self.expect_kw(Kw::Zone)?;
        }
        if t.kw == Kw::Interval {
            self.interval_fields()?;
        }
        loop {
            if self.at(Kind::LBracket) {
                self.next();
                if self.at(Kind::Number) {
                    self.next();
                }
                self.expect(Kind::RBracket)?;
            } else if self.at_kw(Kw::Array) {
                self.next();
                if self.at(Kind::LBracket) {
                    self.next();
                    if self.at(Kind::Number) {
                        self.next();
                    }
                    self.expect(Kind::RBracket)?;
                }
            } else {
                return Ok(());
            }
        }
    }
}
