//! Expressions: operators and precedence-free scanning of a value expression.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `expr, expr, … )` — consumes the closing paren. Empty lists are allowed.
    pub(super) fn expr_list_until_rparen(&mut self, clause: Clause) -> R<()> {
        if self.eat(Kind::RParen) {
            return Ok(());
        }
        loop {
            self.expr(clause)?;
            if !self.eat(Kind::Comma) {
                break;
            }
        }
        self.expect(Kind::RParen)?;
        Ok(())
    }

    /// One expression. Stops (without consuming) at a token that cannot continue it at
    /// this depth; the caller checks that it is what it expects.
    pub(super) fn expr(&mut self, clause: Clause) -> R<()> {
        self.enter()?;
        let r = self.expr_inner(clause, false);
        self.leave();
        r
    }

    pub(super) fn expr_inner(&mut self, clause: Clause, lenient: bool) -> R<()> {
        let mut operand = false;
        let mut case_depth = 0u32;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof
                | Kind::Semicolon
                | Kind::Comma
                | Kind::RParen
                | Kind::RBracket
                | Kind::Colon
                | Kind::DotDot => break,
                Kind::Other => return Err(Fail("unexpected character")),
                Kind::Op => {
                    let op = self.text(&t);
                    if op == "=>" || op == ":=" {
                        break;
                    }
                    self.next();
                    if op == "*" && !operand && !lenient {
                        return Err(Fail("unexpected *"));
                    }
                    operand = false;
                }
                Kind::Typecast => {
                    self.next();
                    self.type_name()?;
                    operand = true;
                }
                Kind::Dot => {
                    if !operand {
                        return Err(Fail("unexpected ."));
                    }
                    self.next();
                    let f = self.next();
                    if !(f.is_name() || f.is_op(self.sql, "*")) {
                        return Err(Fail("expected a field name"));
                    }
                    if f.is_name() {
                        // `(expr).f`: a field, or the call `f(expr)`.
                        self.push_attribute_function(&f, None)?;
                    }
                }
                Kind::LBracket => {
                    self.next();
                    self.enter()?;
                    loop {
                        if self.eat(Kind::RBracket) {
                            break;
                        }
                        if self.eat(Kind::Colon) || self.eat(Kind::Comma) {
                            continue;
                        }
                        if self.at(Kind::LBracket) {
                            // Nested array literal `[[1,2],[3,4]]` after ARRAY.
                            self.expr_inner(clause, lenient)?;
                            continue;
                        }
                        let before = self.peek().start;
                        self.expr(clause)?;
                        if self.peek().start == before {
                            return Err(Fail("bad subscript"));
                        }
                    }
                    self.leave();
                    operand = true;
                }
                Kind::LParen => {
                    if operand {
                        break;
                    }
                    self.paren_expr(clause, lenient)?;
                    operand = true;
                }
                Kind::Str(_) | Kind::Number | Kind::Param => {
                    if operand {
                        break;
                    }
                    self.next();
                    operand = true;
                }
                Kind::Ident | Kind::QuotedIdent | Kind::UnicodeIdent => {
                    if operand {
                        if t.kind != Kind::Ident {
                            if lenient {
                                self.next();
                                continue;
                            }
                            break;
                        }
                        match t.kw {
                            Kw::And
                            | Kw::Or
                            | Kw::Like
                            | Kw::Ilike
                            | Kw::In
                            | Kw::Overlaps
                            | Kw::Escape
                            | Kw::Not => {
                                self.next();
                                operand = false;
                            }
                            Kw::Between => {
                                self.next();
                                let _ = self.eat_kw(Kw::Symmetric) || self.eat_kw(Kw::Asymmetric);
                                operand = false;
                            }
                            Kw::Similar => {
                                self.next();
                                self.expect_kw(Kw::To)?;
                                operand = false;
                            }
                            Kw::Is => {
                                self.next();
                                operand = self.is_tail()?;
                            }
                            Kw::Isnull | Kw::Notnull => {
                                self.next();
                            }
                            Kw::At => {
                                self.next();
                                if !self.eat_kw(Kw::Local) {
                                    self.expect_kw(Kw::Time)?;
                                    self.expect_kw(Kw::Zone)?;
                                    operand = false;
                                }
                            }
                            Kw::Collate => {
                                self.next();
                                self.chain(false)?;
                            }
                            Kw::Operator if self.peek_n(1).kind == Kind::LParen => {
                                self.next();
                                self.skip_parens()?;
                                operand = false;
                            }
                            Kw::When | Kw::Then | Kw::Else if case_depth > 0 => {
                                self.next();
                                operand = false;
                            }
                            Kw::End if case_depth > 0 => {
                                self.next();
                                case_depth -= 1;
                            }
                            _ if lenient => {
                                // Special-syntax functions: unknown words are treated as
                                // possible columns (over-reporting is safe).
                                operand = false;
                                continue_lenient(self, clause)?;
                            }
                            _ => break,
                        }
                    } else {
                        match self.operand_word(clause, &mut case_depth, lenient)? {
                            Some(o) => operand = o,
                            None => break,
                        }
                    }
                }
            }
        }
        if case_depth > 0 {
            return Err(Fail("unterminated CASE"));
        }
        return Ok(());

        fn continue_lenient(p: &mut Parser<'_, '_, '_>, clause: Clause) -> R<()> {
            let t = p.peek();
            if SPECIAL_SYNTAX_WORDS.contains(&t.kw) || p.is_reserved(&t) {
                p.next();
                return Ok(());
            }
            let c = p.chain(true)?;
            if p.at(Kind::LParen) {
                return p.function_call(&c, clause);
            }
            p.column_ref(&c, clause)
        }
    }

    /// After `IS`: returns whether an operand was completed.
    pub(super) fn is_tail(&mut self) -> R<bool> {
        self.eat_kw(Kw::Not);
        if self.eat_kw(Kw::Distinct) {
            self.expect_kw(Kw::From)?;
            return Ok(false);
        }
        for w in [Kw::Null, Kw::True, Kw::False, Kw::Unknown, Kw::Document] {
            if self.eat_kw(w) {
                return Ok(true);
            }
        }
        let _ = self.eat_kw(Kw::Nfc)
            || self.eat_kw(Kw::Nfd)
            || self.eat_kw(Kw::Nfkc)
            || self.eat_kw(Kw::Nfkd);
        if self.eat_kw(Kw::Normalized) {
            return Ok(true);
        }
        if self.eat_kw(Kw::Json) {
            let _ = self.eat_kw(Kw::Value)
                || self.eat_kw(Kw::Array)
                || self.eat_kw(Kw::Object)
                || self.eat_kw(Kw::Scalar);
            if self.eat_kw(Kw::With) || self.eat_kw(Kw::Without) {
                self.expect_kw(Kw::Unique)?;
                self.eat_kw(Kw::Keys);
            }
            return Ok(true);
        }
        if self.eat_kw(Kw::Of) {
            self.skip_parens()?;
            return Ok(true);
        }
        Err(Fail("unknown IS predicate"))
    }
}
