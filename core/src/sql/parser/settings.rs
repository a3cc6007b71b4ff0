//! Settings: SET, RESET, set_config() and what they do to the search path.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// `set_config('search_path' | 'role' | …, …)`: flags from the literal first argument;
    /// anything but a literal sets both flags (conservative). Changing the role is `dcl`.
    /// The search path it sets is followed by later statements of the string only for
    /// the exact form `SELECT [pg_catalog.]set_config('search_path', 'literal', true|false)`
    /// (anything else could run conditionally, or with a value not known here).
    pub(super) fn set_config_flags(&mut self, c: &Chain) -> R<()> {
        let a = self.peek_n(1);
        let after = self.peek_n(2);
        let setting = if a.kind == Kind::Str(StrKind::Standard) && after.kind == Kind::Comma {
            Some(self.name_of(&a)?)
        } else {
            self.pg_settings_setting(c)?
        };
        if let Some(n) = setting {
            let s = n.as_str();
            if LEXING_SETTINGS.iter().any(|l| s.eq_ignore_ascii_case(l)) {
                return Err(Fail(
                    "set_config of a setting that changes how SQL is lexed",
                ));
            }
            if s.eq_ignore_ascii_case("search_path") {
                self.flags |= StatementFlags::SETS_SEARCH_PATH;
                let effect = self.set_config_path(c)?;
                self.set_path_effect(effect);
            } else if s.eq_ignore_ascii_case("role")
                || s.eq_ignore_ascii_case("session_authorization")
            {
                self.flags |= StatementFlags::SETS_ROLE;
                self.class(StatementClass::Dcl);
            }
        } else {
            self.flags |= StatementFlags::SETS_SEARCH_PATH | StatementFlags::SETS_ROLE;
            self.class(StatementClass::Dcl);
            self.set_path_effect(crate::sql::PathEffect::Unknown);
        }
        Ok(())
    }

    /// The setting `set_config(name, 'value', bool)` changes when it is exactly pg_dump's
    /// `SELECT set_config(name, 'value', true|false) FROM [pg_catalog.]pg_settings WHERE
    /// name = 'restrict_nonsystem_relation_kind'` (the `(` is next). Only that name, byte
    /// for byte: a temporary relation can stand in for an unqualified `pg_settings`, and a
    /// padded or differently typed `name` could then equal another setting's name, but
    /// nothing makes `restrict_nonsystem_relation_kind` name a setting that changes how SQL
    /// is read, resolved or checked (the worst a stand-in can do is set that one, or none).
    /// `None` for any other shape or name.
    pub(super) fn pg_settings_setting(&mut self, c: &Chain) -> R<Option<Name>> {
        let call_start = (self.cur + 1).checked_sub(2 * c.n);
        let first = self.tok(self.base);
        if self.base != 0 || call_start != Some(1) || !first.is(Kw::Select) {
            return Ok(None);
        }
        let is_name_column = |t: &Token| t.kind == Kind::Ident && t.kw == Kw::Name;
        let head = [
            self.peek_n(1),
            self.peek_n(2),
            self.peek_n(3),
            self.peek_n(4),
        ];
        let flag = self.peek_n(5);
        if !is_name_column(&head[0])
            || head[1].kind != Kind::Comma
            || head[2].kind != Kind::Str(StrKind::Standard)
            || head[3].kind != Kind::Comma
            || !(flag.is(Kw::True) || flag.is(Kw::False))
            || self.peek_n(6).kind != Kind::RParen
            || !self.peek_n(7).is(Kw::From)
        {
            return Ok(None);
        }
        let mut i = 8;
        let t = self.peek_n(i);
        if t.kind == Kind::Ident && self.name_of(&t)?.as_str() == "pg_catalog" {
            if self.peek_n(i + 1).kind != Kind::Dot {
                return Ok(None);
            }
            i += 2;
        }
        let table = self.peek_n(i);
        if table.kind != Kind::Ident || self.name_of(&table)?.as_str() != "pg_settings" {
            return Ok(None);
        }
        let (w, col, eq, lit, end) = (
            self.peek_n(i + 1),
            self.peek_n(i + 2),
            self.peek_n(i + 3),
            self.peek_n(i + 4),
            self.peek_n(i + 5),
        );
        if !w.is(Kw::Where)
            || !is_name_column(&col)
            || eq.kind != Kind::Op
            || self.text(&eq) != "="
            || self.text(&lit) != "'restrict_nonsystem_relation_kind'"
            || !matches!(end.kind, Kind::Eof)
        {
            return Ok(None);
        }
        Ok(Some(self.name_of(&lit)?))
    }

    /// A path effect; `Unknown` is never replaced.
    pub(super) fn set_path_effect(&mut self, e: crate::sql::PathEffect) {
        if self.path_effect != crate::sql::PathEffect::Unknown {
            self.path_effect = e;
        }
    }

    /// The path effect of `set_config('search_path', …)` (the `(` is next); pushes the
    /// schemas it sets when it is the exact, unconditional form.
    pub(super) fn set_config_path(&mut self, c: &Chain) -> R<crate::sql::PathEffect> {
        use crate::sql::PathEffect;
        // Tokens: SELECT name[.name] ( 'search_path' , 'value' , bool ) <end>
        let call_start = (self.cur + 1).checked_sub(2 * c.n);
        let first = self.tok(self.base);
        if self.base != 0 || call_start != Some(1) || !first.is(Kw::Select) {
            return Ok(PathEffect::Unknown);
        }
        let v = self.peek_n(3);
        let local = match self.peek_n(5).kw {
            Kw::True => true,
            Kw::False => false,
            _ => return Ok(PathEffect::Unknown),
        };
        if v.kind != Kind::Str(StrKind::Standard)
            || self.peek_n(4).kind != Kind::Comma
            || self.peek_n(6).kind != Kind::RParen
            || self.peek_n(7).kind != Kind::Eof
        {
            return Ok(PathEffect::Unknown);
        }
        // The literal's value ('' is a quote; a continuation line is not followed).
        let text = self.text(&v);
        let body = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
        let mut buf = [0u8; 1024];
        let mut len = 0;
        let mut bytes = body.bytes();
        while let Some(b) = bytes.next() {
            if b == b'\'' && bytes.next() != Some(b'\'') {
                return Ok(PathEffect::Unknown);
            }
            let Some(slot) = buf.get_mut(len) else {
                return Ok(PathEffect::Unknown);
            };
            *slot = b;
            len += 1;
        }
        let Ok(value) = std::str::from_utf8(buf.get(..len).unwrap_or(&[])) else {
            return Ok(PathEffect::Unknown);
        };
        if !self.push_path_list(value)? {
            return Ok(PathEffect::Unknown);
        }
        Ok(PathEffect::Set { local })
    }

    /// PostgreSQL's `SplitIdentifierString(value, ',')` as `search_path` uses it: names
    /// separated by commas, unquoted ones case-folded (ASCII), `"…"` ones as written
    /// (`""` = `"`), each truncated to 63 bytes. `false` if PostgreSQL would reject it.
    pub(super) fn push_path_list(&mut self, value: &str) -> R<bool> {
        let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
        let mut rest = value.trim_start_matches(is_space);
        if rest.is_empty() {
            return Ok(true);
        }
        loop {
            let name;
            if let Some(q) = rest.strip_prefix('"') {
                // Quoted: up to the closing quote; `""` is a quote.
                let mut end = None;
                let mut it = q.char_indices().peekable();
                while let Some((i, ch)) = it.next() {
                    if ch == '"' {
                        if it.peek().map(|&(_, c)| c) == Some('"') {
                            it.next();
                            continue;
                        }
                        end = Some(i);
                        break;
                    }
                }
                let Some(e) = end else { return Ok(false) };
                let raw = q.get(..e).unwrap_or("");
                let mut chars = raw.chars();
                name = Name::from_chars(std::iter::from_fn(|| {
                    let ch = chars.next()?;
                    if ch == '"' {
                        chars.next();
                    }
                    Some(ch)
                }));
                rest = q.get(e + 1..).unwrap_or("");
            } else {
                let e = rest
                    .find(|c: char| c == ',' || is_space(c))
                    .unwrap_or(rest.len());
                if e == 0 {
                    return Ok(false);
                }
                let raw = rest.get(..e).unwrap_or("");
                name = Name::from_chars(raw.chars().map(|c| c.to_ascii_lowercase()));
                rest = rest.get(e..).unwrap_or("");
            }
            let r = self.push(name.as_str())?;
            self.facts.push_path_name(r)?;
            rest = rest.trim_start_matches(is_space);
            if rest.is_empty() {
                return Ok(true);
            }
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start_matches(is_space),
                None => return Ok(false),
            }
        }
    }

    /// `SET [SESSION|LOCAL] …`. Changing the role (`SET ROLE`, `SET SESSION
    /// AUTHORIZATION`) is `dcl`: the proxy has its own database identity, and which role
    /// the session runs as is a privilege decision.
    pub(super) fn set(&mut self) -> R<()> {
        use crate::sql::PathEffect;
        self.expect_kw(Kw::Set)?;
        if self.at_transaction_setting() {
            self.class(StatementClass::Transaction);
            return self.rest();
        }
        self.class(StatementClass::Session);
        let local = self.at_kw(Kw::Local) && !self.is_set_to(1);
        let scope_word = local
            || (self.at_kw(Kw::Session)
                && !self.at_kw_n(1, Kw::Authorization)
                && !self.at_kw_n(1, Kw::Characteristics)
                && !self.is_set_to(1));
        if scope_word {
            self.next();
            if self.at_transaction_setting() {
                self.classes = ClassSet::single(StatementClass::Transaction);
                return self.rest();
            }
        }
        if (self.at_kw(Kw::Role) && !self.is_set_to(1))
            || (self.at_kw(Kw::Session) && self.at_kw_n(1, Kw::Authorization))
        {
            self.flags |= StatementFlags::SETS_ROLE;
            self.classes = ClassSet::single(StatementClass::Dcl);
            return self.rest();
        }
        if self.at_kw(Kw::Schema) && !self.is_set_to(1) {
            // `SET SCHEMA 'x'` is `SET search_path TO 'x'`.
            self.next();
            self.flags |= StatementFlags::SETS_SEARCH_PATH;
            let t = self.next();
            let n = self.name_of(&t)?;
            let r = self.push(n.as_str())?;
            self.facts.push_path_name(r)?;
            self.set_path_effect(PathEffect::Set { local });
            return Ok(());
        }
        if self.at_kw(Kw::Names) {
            // SET NAMES 'enc' = SET client_encoding TO 'enc'.
            self.next();
            return self.check_lexing_setting("client_encoding");
        }
        let var = self.chain(false)?;
        let vname_n = self.name_of(&var.last())?;
        let vname = vname_n.as_str();
        if var.n == 1 && LEXING_SETTINGS.contains(&vname) {
            if !self.eat_kw(Kw::To) && !self.eat_op("=") {
                return Err(Fail("SET not understood"));
            }
            return self.check_lexing_setting(vname);
        }
        let is_path = var.n == 1 && vname == "search_path";
        if var.n == 1 && (vname == "role" || vname == "session_authorization") {
            self.flags |= StatementFlags::SETS_ROLE;
            self.classes = ClassSet::single(StatementClass::Dcl);
        }
        if !is_path {
            // Any other setting (`SET TIME ZONE …`, `SET NAMES …`, `SET x TO …`): the class
            // is all policy needs.
            return self.rest();
        }
        self.flags |= StatementFlags::SETS_SEARCH_PATH;
        if !self.eat_kw(Kw::To) && !self.eat_op("=") {
            return Err(Fail("SET search_path not understood"));
        }
        if self.eat_kw(Kw::Default) {
            self.set_path_effect(PathEffect::Reset);
            return Ok(());
        }
        loop {
            let t = self.next();
            if !(t.is_name() || t.kind == Kind::Str(StrKind::Standard)) {
                return Err(Fail("search_path value not understood"));
            }
            // A quoted list `SET search_path = 'a, b'` names one schema "a, b" in
            // PostgreSQL too; recorded as written.
            let n = self.name_of(&t)?;
            let r = self.push(n.as_str())?;
            self.facts.push_path_name(r)?;
            if !self.eat(Kind::Comma) {
                self.set_path_effect(PathEffect::Set { local });
                return Ok(());
            }
        }
    }

    /// The value of a setting that changes how later SQL is lexed: only values under
    /// which this classifier's lexer is still PostgreSQL's are understood.
    pub(super) fn check_lexing_setting(&mut self, setting: &str) -> R<()> {
        let t = self.next();
        let v = match t.kind {
            Kind::Ident | Kind::Number => self.text(&t).to_ascii_lowercase_fixed(),
            Kind::Str(StrKind::Standard) => self.name_of(&t)?.as_str().to_ascii_lowercase_fixed(),
            _ => return Err(Fail("setting value not understood")),
        };
        let ok = match setting {
            "standard_conforming_strings" => {
                matches!(v.as_str(), "on" | "true" | "yes" | "1" | "default")
            }
            _ => matches!(
                v.as_str(),
                "utf8" | "utf-8" | "unicode" | "sql_ascii" | "default"
            ),
        };
        if !ok {
            // `standard_conforming_strings = off` makes `\'` end no string; a client
            // encoding like SJIS or BIG5 can hide a quote or backslash inside a character.
            // Either way later messages would be lexed differently from here.
            return Err(Fail("setting changes how SQL is lexed"));
        }
        Ok(())
    }

    /// `SET TRANSACTION …`, `SET SESSION CHARACTERISTICS AS TRANSACTION …`,
    /// `SET CONSTRAINTS …` (but not variables of those names: `SET constraints TO x`).
    pub(super) fn at_transaction_setting(&mut self) -> bool {
        (self.at_kw(Kw::Transaction) && !self.is_set_to(1))
            || (self.at_kw(Kw::Session) && self.at_kw_n(1, Kw::Characteristics))
            || (self.at_kw(Kw::Constraints) && !self.is_set_to(1))
    }

    pub(super) fn is_set_to(&mut self, n: usize) -> bool {
        let t = self.peek_n(n);
        t.is(Kw::To) || t.is_op(self.sql, "=")
    }

    /// `RESET name | ALL | ROLE | SESSION AUTHORIZATION | TIME ZONE …` (the role ones are
    /// `dcl`, as in [`Parser::set`]).
    pub(super) fn reset(&mut self) -> R<()> {
        self.expect_kw(Kw::Reset)?;
        self.class(StatementClass::Session);
        if self.at_kw(Kw::All) {
            self.flags |= StatementFlags::RESETS_SESSION;
            self.set_path_effect(crate::sql::PathEffect::Reset);
        } else if self.at_kw(Kw::Role)
            || (self.at_kw(Kw::Session) && self.at_kw_n(1, Kw::Authorization))
        {
            self.flags |= StatementFlags::SETS_ROLE;
            self.classes = ClassSet::single(StatementClass::Dcl);
        } else if self.at_kw(Kw::SearchPath) {
            self.flags |= StatementFlags::SETS_SEARCH_PATH;
            self.set_path_effect(crate::sql::PathEffect::Reset);
        }
        self.rest()
    }
}
