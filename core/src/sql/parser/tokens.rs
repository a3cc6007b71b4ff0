//! The token window: peeking, consuming, backtracking and the small matchers every grammar area uses.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    pub(super) fn eof(&self) -> Token {
        Token {
            kind: Kind::Eof,
            start: self.end as u32,
            end: self.end as u32,
            kw: Kw::None,
        }
    }

    /// Lexes the token after the window (tokens at or after the statement end are `Eof`).
    /// The splitter lexed the whole statement without error, so re-lexing it cannot fail;
    /// should it anyway, the error is kept (the statement fails) and `Eof` returned.
    pub(super) fn lex_more(&mut self) -> Token {
        let before = self.lx.work;
        let mut err = None;
        let t = self.lx.next_or_eof(&mut err);
        self.work += self.lx.work.saturating_sub(before);
        if let Some(e) = err {
            self.token_error.get_or_insert(Fail(e.0));
            return self.eof();
        }
        if (t.start as usize) < self.end {
            t
        } else {
            self.eof()
        }
    }

    /// The token with absolute index `idx` (>= the current one). Infallible (so that
    /// tokens travel in registers): a failure is kept in `token_error` and reads as `Eof`.
    #[inline]
    pub(super) fn tok(&mut self, idx: usize) -> Token {
        // `base` is 0 unless a long statement slid the window: `wrapping_sub` turns an
        // index before it into a huge offset, which the slow path reports.
        if let Some(t) = self.toks.get(idx.wrapping_sub(self.base)) {
            return t;
        }
        self.tok_slow(idx)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn tok_slow(&mut self, idx: usize) -> Token {
        if idx < self.base {
            self.token_error.get_or_insert(Fail("token window lost"));
            return self.eof();
        }
        loop {
            if let Some(t) = self.toks.get(idx - self.base) {
                return t;
            }
            if let Some(last) = self.toks.last()
                && last.kind == Kind::Eof
            {
                return last;
            }
            if self.toks.is_full() {
                // Slide: drop what was consumed. The window is far larger than any
                // lookahead, so this always frees room.
                let drop = self.cur.saturating_sub(self.base).min(self.toks.len());
                if drop == 0 {
                    self.token_error.get_or_insert(Fail("lookahead too long"));
                    return self.eof();
                }
                self.toks.drop_front(drop);
                self.base += drop;
            }
            let t = self.lex_more();
            if !self.toks.push(t) {
                self.token_error.get_or_insert(Fail("lookahead too long"));
                return self.eof();
            }
        }
    }

    #[inline]
    pub(super) fn peek(&mut self) -> Token {
        self.tok(self.cur)
    }

    /// The token `n` places after the next one (`peek_n(0) == peek()`).
    #[inline]
    pub(super) fn peek_n(&mut self, n: usize) -> Token {
        self.tok(self.cur + n)
    }

    #[inline]
    pub(super) fn next(&mut self) -> Token {
        let t = self.tok(self.cur);
        self.work += 1;
        if t.kind != Kind::Eof {
            self.cur += 1;
        }
        t
    }

    pub(super) fn snapshot(&mut self) -> Snapshot {
        Snapshot {
            pos: self.save(),
            facts: self.facts.current_mark(),
            scopes: self.scopes.mark(),
            classes: self.classes,
            flags: self.flags,
            depth: self.depth,
            n_outs: self.n_outs,
        }
    }

    pub(super) fn rollback(&mut self, s: Snapshot) {
        self.restore(s.pos);
        self.facts.truncate_current(s.facts);
        self.scopes.restore(s.scopes);
        self.classes = s.classes;
        self.flags = s.flags;
        self.depth = s.depth;
        self.n_outs = s.n_outs;
    }

    /// Runs `first`; if it fails, undoes its effects and runs `second`. Only for
    /// constructs PostgreSQL's grammar resolves with more than one token of lookahead.
    pub(super) fn either(
        &mut self,
        first: impl FnOnce(&mut Self) -> R<()>,
        second: impl FnOnce(&mut Self) -> R<()>,
    ) -> R<()> {
        if self.backtracks == 0 {
            return Err(Fail("too ambiguous"));
        }
        self.backtracks -= 1;
        let snap = self.snapshot();
        match first(self) {
            Ok(()) => Ok(()),
            Err(e) if e.0 == "facts capacity exceeded" => Err(e),
            Err(_) => {
                self.rollback(snap);
                second(self)
            }
        }
    }

    pub(super) fn save(&mut self) -> Pos {
        let t = self.peek();
        Pos {
            idx: self.cur,
            byte: t.start,
        }
    }

    pub(super) fn restore(&mut self, p: Pos) {
        if p.idx >= self.base {
            self.cur = p.idx;
        } else {
            // Slid out of the window: re-lex from the token's start (the lexer has no
            // state between tokens, so this yields the same tokens again).
            self.toks.clear();
            self.base = p.idx;
            self.cur = p.idx;
            self.lx = Lexer::at(self.sql, p.byte as usize);
        }
    }

    #[inline]
    pub(super) fn at_kw(&mut self, kw: Kw) -> bool {
        self.peek().kw == kw
    }

    #[inline]
    pub(super) fn at_kw_n(&mut self, n: usize, kw: Kw) -> bool {
        self.peek_n(n).kw == kw
    }

    #[inline]
    pub(super) fn eat_kw(&mut self, kw: Kw) -> bool {
        if self.at_kw(kw) {
            self.next();
            return true;
        }
        false
    }

    pub(super) fn expect_kw(&mut self, kw: Kw) -> R<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(Fail("unexpected token"))
        }
    }

    #[inline]
    pub(super) fn at(&mut self, k: Kind) -> bool {
        self.peek().kind == k
    }

    #[inline]
    pub(super) fn eat(&mut self, k: Kind) -> bool {
        if self.at(k) {
            self.next();
            return true;
        }
        false
    }

    pub(super) fn expect(&mut self, k: Kind) -> R<Token> {
        let t = self.next();
        if t.kind == k {
            Ok(t)
        } else {
            Err(Fail("unexpected token"))
        }
    }

    pub(super) fn at_end(&mut self) -> bool {
        matches!(self.peek().kind, Kind::Eof)
    }

    pub(super) fn expect_end(&mut self) -> R<()> {
        if let Some(e) = self.token_error {
            return Err(e);
        }
        if self.at_end() {
            Ok(())
        } else {
            Err(Fail("statement not fully understood"))
        }
    }

    pub(super) fn text(&self, t: &Token) -> &'a str {
        t.text(self.sql)
    }

    pub(super) fn is_reserved(&self, t: &Token) -> bool {
        t.kw.is_reserved() || t.kw.is_type_func_name()
    }

    pub(super) fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING_LEVELS {
            return Err(Fail("nesting too deep"));
        }
        Ok(())
    }

    pub(super) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Transaction control, for the search path's transaction semantics:
    /// `BEGIN`/`START TRANSACTION`, `COMMIT`/`END [AND [NO] CHAIN]`,
    /// `ROLLBACK`/`ABORT [AND [NO] CHAIN]`, `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`,
    /// `SAVEPOINT name`, `RELEASE [SAVEPOINT] name` (the name goes to `prepared_name`).
    pub(super) fn transaction_control(&mut self, kw: Kw) -> R<()> {
        use crate::sql::PathEffect as E;
        self.next();
        let word = |p: &mut Self, w: &str| {
            let t = p.peek();
            let hit = t.kind == Kind::Ident && p.text(&t).eq_ignore_ascii_case(w);
            if hit {
                p.next();
            }
            hit
        };
        match kw {
            Kw::Begin | Kw::Start => self.path_effect = E::Begin,
            Kw::Savepoint => {
                let n = self.any_name_token()?;
                self.prepared_name = self.push(n.as_str())?;
                self.path_effect = E::Savepoint;
            }
            Kw::Release => {
                self.eat_kw(Kw::Savepoint);
                let n = self.any_name_token()?;
                self.prepared_name = self.push(n.as_str())?;
                self.path_effect = E::Release;
            }
            _ => {
                let commit = matches!(kw, Kw::Commit | Kw::End);
                // `COMMIT PREPARED 'gid'` / `ROLLBACK PREPARED 'gid'` end a prepared
                // transaction, not this session's (and cannot run inside one).
                if word(self, "prepared") {
                    return self.rest();
                }
                let _ = word(self, "work") || self.eat_kw(Kw::Transaction);
                if !commit && self.eat_kw(Kw::To) {
                    self.eat_kw(Kw::Savepoint);
                    let n = self.any_name_token()?;
                    self.prepared_name = self.push(n.as_str())?;
                    self.path_effect = E::RollbackTo;
                    return self.expect_end();
                }
                let mut chain = false;
                if self.eat_kw(Kw::And) {
                    let no = self.eat_kw(Kw::No);
                    if !word(self, "chain") {
                        return Err(Fail("expected CHAIN"));
                    }
                    chain = !no;
                }
                self.path_effect = if commit {
                    E::Commit { chain }
                } else {
                    E::Rollback { chain }
                };
                return self.expect_end();
            }
        }
        // BEGIN's modes (ISOLATION LEVEL …, READ ONLY) carry no facts.
        self.rest()
    }

    /// Skips to the end of the statement: for statements whose class is fully known from
    /// their first keywords and which carry no facts (transaction control, SHOW, …).
    pub(super) fn rest(&mut self) -> R<()> {
        loop {
            if self.next().kind == Kind::Eof {
                return Ok(());
            }
        }
    }

    /// Skips a balanced `( … )` (the opening paren is next).
    pub(super) fn skip_parens(&mut self) -> R<()> {
        self.expect(Kind::LParen)?;
        let mut depth = 1u32;
        loop {
            match self.next().kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Kind::Eof => return Err(Fail("unbalanced parentheses")),
                _ => {}
            }
        }
    }

    pub(super) fn class(&mut self, c: StatementClass) {
        self.classes.insert(c);
    }
}
