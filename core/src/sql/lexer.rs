//! The SQL lexer: PostgreSQL's `scan.l` token rules, one token at a time, over a `&str`.
//!
//! What it is for: turning SQL text into tokens exactly where PostgreSQL's own scanner
//! would put the boundaries, so that the classifier never sees a keyword PostgreSQL would
//! read as part of a string, comment, quoted identifier or dollar quote (and the reverse).
//!
//! What it must never do: allocate, panic on any input, or guess. A construct PostgreSQL
//! rejects (unterminated string, comment, quoted identifier or dollar quote, zero-length
//! quoted identifier, trailing junk after a number, a bad `UESCAPE`) is a [`LexError`]; the
//! classifier then makes the statement `unknown`.
//!
//! Assumption (documented in the module docs of `sql`): `standard_conforming_strings` is
//! `on` (the default since PostgreSQL 9.1), so a backslash in `'…'` is an ordinary
//! character and only `E'…'` strings have backslash escapes.
//!
//! The lexer is `Copy`: the parser looks ahead by copying it, so lookahead never allocates.

use nom::IResult;

use super::keywords::{self, Kw};

/// NAMEDATALEN - 1: PostgreSQL truncates identifiers to this many bytes.
pub const MAX_IDENT_BYTES: usize = 63;

/// A lexing failure: PostgreSQL would reject the input at this point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexError(pub &'static str);

/// The kind of a string constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StrKind {
    /// `'…'` (standard conforming: `''` is the only escape).
    Standard,
    /// `E'…'`: backslash escapes.
    Escape,
    /// `B'…'`.
    Bit,
    /// `X'…'`.
    Hex,
    /// `U&'…'` (optionally followed by `UESCAPE 'c'`, which is part of the token).
    Unicode,
    /// `$$…$$` / `$tag$…$tag$`.
    Dollar,
}

/// Token kinds. Keywords are `Ident`s; the parser compares them case-insensitively.
///
/// `repr(u8)`: a tag byte the parser's matches jump on directly (without it, `Str`'s
/// payload would share the byte and every match would first decode it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Unquoted identifier or keyword.
    Ident,
    /// `"…"`.
    QuotedIdent,
    /// `U&"…"` (optionally followed by `UESCAPE 'c'`, which is part of the token).
    UnicodeIdent,
    Str(StrKind),
    /// Integer, decimal, real, hex/octal/binary integer.
    Number,
    /// `$1`.
    Param,
    /// An operator, including the single-character ones `+ - * / % ^ < > =` and `=> :=`.
    Op,
    /// `::`
    Typecast,
    /// `..`
    DotDot,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semicolon,
    Colon,
    Dot,
    /// A character PostgreSQL's scanner returns as itself and its grammar never accepts
    /// (e.g. `\`, `{`, a lone `$`).
    Other,
    Eof,
}

/// One token: its kind and byte range in the SQL string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: u32,
    pub end: u32,
    /// The keyword an unquoted identifier spells (`Kw::None` for anything else).
    pub kw: Kw,
}

impl Token {
    /// An `Eof` token at offset 0.
    pub const EOF: Token = Token {
        kind: Kind::Eof,
        start: 0,
        end: 0,
        kw: Kw::None,
    };

    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }
    /// Whether this is the unquoted keyword `kw`.
    #[inline]
    pub fn is(&self, kw: Kw) -> bool {
        self.kw == kw
    }
    /// Whether this is the unquoted keyword `kw` (given in lower case).
    pub fn is_kw(&self, sql: &str, kw: &str) -> bool {
        self.kind == Kind::Ident && self.text(sql).eq_ignore_ascii_case(kw)
    }
    pub fn is_op(&self, sql: &str, op: &str) -> bool {
        self.kind == Kind::Op && self.text(sql) == op
    }
    /// Identifier of any quoting.
    pub fn is_name(&self) -> bool {
        matches!(
            self.kind,
            Kind::Ident | Kind::QuotedIdent | Kind::UnicodeIdent
        )
    }
    pub fn is_string(&self) -> bool {
        matches!(self.kind, Kind::Str(_))
    }
}

/// scan.l: `space [ \t\n\r\f\v]`.
#[inline]
fn is_space(b: u8) -> bool {
    CLASS[usize::from(b)] & C_SPACE != 0
}
/// scan.l: `horiz_space [ \t\f\v]`.
fn is_horiz_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0c | 0x0b)
}
fn is_newline(b: u8) -> bool {
    matches!(b, b'\n' | b'\r')
}
/// scan.l: `ident_start [A-Za-z\200-\377_]`.
#[inline]
pub fn is_ident_start(b: u8) -> bool {
    CLASS[usize::from(b)] & C_IDENT_START != 0
}
/// scan.l: `ident_cont [A-Za-z\200-\377_0-9\$]`.
#[inline]
pub fn is_ident_cont(b: u8) -> bool {
    CLASS[usize::from(b)] & C_IDENT_CONT != 0
}

const C_SPACE: u8 = 1;
const C_IDENT_START: u8 = 2;
const C_IDENT_CONT: u8 = 4;
/// An identifier start that cannot begin a prefixed literal (`E'…'`, `B'…'`, `X'…'`,
/// `N'…'`, `U&'…'`, `U&"…"`).
const C_PLAIN_IDENT_START: u8 = 8;
/// scan.l `op_chars`.
const C_OP: u8 = 16;

/// The byte classes above, by byte (one load instead of a chain of range checks).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b) {
            c |= C_SPACE;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            c |= C_IDENT_START | C_IDENT_CONT;
            if !matches!(b.to_ascii_lowercase(), b'e' | b'b' | b'x' | b'n' | b'u') {
                c |= C_PLAIN_IDENT_START;
            }
        }
        if b.is_ascii_digit() || b == b'$' {
            c |= C_IDENT_CONT;
        }
        if is_op_char(b) {
            c |= C_OP;
        }
        t[i] = c;
        i += 1;
    }
    t
};
/// scan.l: `dolq_cont [A-Za-z\200-\377_0-9]` (no `$`).
fn is_dolq_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}
/// scan.l: `op_chars [\~\!\@\#\^\&\|\`\?\+\-\*\/\%\<\>\=]`.
#[inline]
pub(crate) const fn is_op_char(b: u8) -> bool {
    matches!(
        b,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

// ---- the regular parts of scan.l ----

fn digits_with_underscores(i: &str, digit: fn(char) -> bool) -> IResult<&str, &str> {
    // `decinteger {decdigit}(_?{decdigit})*`: the first digit is consumed by the caller's
    // check; here we take (_?digit)* greedily.
    let bytes = i.as_bytes();
    let mut n = 0;
    loop {
        match bytes.get(n) {
            Some(&b) if digit(b as char) => n += 1,
            Some(b'_') if bytes.get(n + 1).is_some_and(|&d| digit(d as char)) => n += 2,
            _ => break,
        }
    }
    Ok((&i[n..], &i[..n]))
}

/// A cursor over one SQL string. `Copy`, so lookahead is a copy.
#[derive(Clone, Copy, Debug)]
pub struct Lexer<'a> {
    sql: &'a str,
    pos: usize,
    /// Tokens (and skipped whitespace/comment runs) produced: the unit of work the
    /// linear-time property test budgets.
    pub work: u64,
}

impl<'a> Lexer<'a> {
    pub fn new(sql: &'a str) -> Self {
        Lexer {
            sql,
            pos: 0,
            work: 0,
        }
    }
    pub fn at(sql: &'a str, pos: usize) -> Self {
        Lexer { sql, pos, work: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    fn bytes(&self) -> &'a [u8] {
        self.sql.as_bytes()
    }
    fn byte(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    /// Skips whitespace and comments. scan.l: `--` to end of line; `/* … */` nests.
    #[inline(always)]
    fn skip_trivia(&mut self) -> Result<(), LexError> {
        let b = self.bytes();
        loop {
            match b.get(self.pos) {
                Some(&c) if is_space(c) => {
                    // A byte loop: every byte of a whitespace run is ASCII.
                    let mut i = self.pos + 1;
                    while b.get(i).is_some_and(|&c| is_space(c)) {
                        i += 1;
                    }
                    self.pos = i;
                    self.work += 1;
                }
                Some(b'-') if b.get(self.pos + 1) == Some(&b'-') => {
                    let rest = &b[self.pos..];
                    let n = rest
                        .iter()
                        .position(|&c| is_newline(c))
                        .unwrap_or(rest.len());
                    self.pos += n;
                    self.work += 1;
                }
                Some(b'/') if b.get(self.pos + 1) == Some(&b'*') => {
                    self.pos = skip_block_comment(b, self.pos)?;
                    self.work += 1;
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token (`Eof` at the end, forever).
    pub fn next_token(&mut self) -> Result<Token, LexError> {
        self.lex()
    }

    /// [`Lexer::next_token`] for hot loops: the token travels in registers (no `Result`
    /// on the return path). An error is stored in `err` and reads as `Eof`; callers must
    /// check `err` whenever they see `Eof`.
    #[inline(never)]
    pub fn next_or_eof(&mut self, err: &mut Option<LexError>) -> Token {
        // Fast path for the commonest tokens: optional spaces, then a plain identifier or
        // keyword or one of `( ) , ;`. Anything else (comments, literals, operators,
        // prefixed strings like `E'…'`) goes through `lex`, which starts over at the first
        // byte after the spaces — so both paths yield the same tokens.
        let b = self.bytes();
        let mut i = self.pos;
        let Some(&mut_c) = b.get(i) else {
            self.work += 1;
            return self.tok(Kind::Eof, i, i);
        };
        let mut c = mut_c;
        if CLASS[usize::from(c)] & C_SPACE != 0 {
            i += 1;
            while b
                .get(i)
                .is_some_and(|&d| CLASS[usize::from(d)] & C_SPACE != 0)
            {
                i += 1;
            }
            self.work += 1;
            self.pos = i;
            match b.get(i) {
                Some(&d) => c = d,
                None => {
                    self.work += 1;
                    return self.tok(Kind::Eof, i, i);
                }
            }
        }
        let class = CLASS[usize::from(c)];
        if class & C_PLAIN_IDENT_START != 0
            || (class & C_IDENT_START != 0 && !matches!(b.get(i + 1), Some(b'\'') | Some(b'&')))
        {
            let mut e = i + 1;
            while b
                .get(e)
                .is_some_and(|&d| CLASS[usize::from(d)] & C_IDENT_CONT != 0)
            {
                e += 1;
            }
            self.work += 1;
            self.pos = e;
            return Token {
                kind: Kind::Ident,
                start: i as u32,
                end: e as u32,
                kw: keywords::lookup_in(b, i, e),
            };
        }
        let next = b.get(i + 1).copied().unwrap_or(b' ');
        let mut end = i + 1;
        let kind = match c {
            b'(' => Kind::LParen,
            b')' => Kind::RParen,
            b',' => Kind::Comma,
            b';' => Kind::Semicolon,
            // A one-character operator: scan.l's longest run of `op_chars` is this one
            // character (no comment start, no trailing `+`/`-` rule applies).
            _ if class & C_OP != 0 && CLASS[usize::from(next)] & C_OP == 0 => Kind::Op,
            // `$n` with at most 9 digits (always an int32; longer ones are checked by
            // `lex`).
            b'$' if next.is_ascii_digit() => {
                end = i + 2;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end - i > 10 {
                    return self.next_slow(err);
                }
                Kind::Param
            }
            _ => return self.next_slow(err),
        };
        self.work += 1;
        self.pos = end;
        Token {
            kind,
            start: i as u32,
            end: end as u32,
            kw: Kw::None,
        }
    }

    /// Everything [`Lexer::next_or_eof`]'s fast path does not take.
    #[inline(never)]
    fn next_slow(&mut self, err: &mut Option<LexError>) -> Token {
        match self.lex() {
            Ok(t) => t,
            Err(e) => {
                *err = Some(e);
                let p = self.pos;
                self.tok(Kind::Eof, p, p)
            }
        }
    }

    #[inline(always)]
    fn lex(&mut self) -> Result<Token, LexError> {
        self.skip_trivia()?;
        self.work += 1;
        let start = self.pos;
        let Some(b) = self.byte(start) else {
            return Ok(self.tok(Kind::Eof, start, start));
        };
        let next = self.byte(start + 1);
        let kind;
        let end;
        match b {
            b'\'' => {
                end = self.quoted_string(start + 1, StrKind::Standard)?;
                kind = Kind::Str(StrKind::Standard);
            }
            b'"' => {
                end = quoted_ident_end(self.bytes(), start + 1)?;
                kind = Kind::QuotedIdent;
            }
            b'e' | b'E' if next == Some(b'\'') => {
                end = self.quoted_string(start + 2, StrKind::Escape)?;
                kind = Kind::Str(StrKind::Escape);
            }
            b'b' | b'B' if next == Some(b'\'') => {
                end = self.quoted_string(start + 2, StrKind::Bit)?;
                kind = Kind::Str(StrKind::Bit);
            }
            b'x' | b'X' if next == Some(b'\'') => {
                end = self.quoted_string(start + 2, StrKind::Hex)?;
                kind = Kind::Str(StrKind::Hex);
            }
            b'n' | b'N' if next == Some(b'\'') => {
                // scan.l `xnstart`: "yyless(1); eat only 'n' this time" — the scanner
                // returns NCHAR and then an ordinary string literal.
                end = start + 1;
                kind = Kind::Ident;
            }
            b'u' | b'U'
                if next == Some(b'&')
                    && matches!(self.byte(start + 2), Some(b'\'') | Some(b'"')) =>
            {
                let body_end = if self.byte(start + 2) == Some(b'\'') {
                    self.quoted_string(start + 3, StrKind::Unicode)?
                } else {
                    quoted_ident_end(self.bytes(), start + 3)?
                };
                let (_, e) = self.uescape(body_end)?;
                end = e;
                kind = if self.byte(start + 2) == Some(b'\'') {
                    Kind::Str(StrKind::Unicode)
                } else {
                    Kind::UnicodeIdent
                };
            }
            b'$' => {
                if next.is_some_and(|d| d.is_ascii_digit()) {
                    // scan.l (PostgreSQL 18): `param \${decinteger}`; what follows is the
                    // next token (`$1abc` is `$1` `abc`). The number must fit an int32.
                    let rest = self.sql.get(start + 2..).unwrap_or("");
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    end = start + 2 + digits;
                    let mut value: u64 = 0;
                    for d in self.bytes()[start + 1..end]
                        .iter()
                        .filter(|b| b.is_ascii_digit())
                    {
                        value = value.saturating_mul(10).saturating_add(u64::from(d - b'0'));
                    }
                    if value > i32::MAX as u64 {
                        return Err(LexError("parameter number too large"));
                    }
                    kind = Kind::Param;
                } else {
                    match self.dollar_quote(start)? {
                        Some(e) => {
                            end = e;
                            kind = Kind::Str(StrKind::Dollar);
                        }
                        None => {
                            // scan.l `dolqfailed`: a lone `$` is returned as itself.
                            end = start + 1;
                            kind = Kind::Other;
                        }
                    }
                }
            }
            b'0'..=b'9' => {
                end = self.number(start)?;
                kind = Kind::Number;
            }
            b'.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                end = self.number(start)?;
                kind = Kind::Number;
            }
            b'.' if next == Some(b'.') => {
                end = start + 2;
                kind = Kind::DotDot;
            }
            b':' if next == Some(b':') => {
                end = start + 2;
                kind = Kind::Typecast;
            }
            b':' if next == Some(b'=') => {
                end = start + 2;
                kind = Kind::Op;
            }
            b'(' => (kind, end) = (Kind::LParen, start + 1),
            b')' => (kind, end) = (Kind::RParen, start + 1),
            b'[' => (kind, end) = (Kind::LBracket, start + 1),
            b']' => (kind, end) = (Kind::RBracket, start + 1),
            b',' => (kind, end) = (Kind::Comma, start + 1),
            b';' => (kind, end) = (Kind::Semicolon, start + 1),
            b':' => (kind, end) = (Kind::Colon, start + 1),
            b'.' => (kind, end) = (Kind::Dot, start + 1),
            // Identifiers first (the commonest token; no op char starts one).
            _ if is_ident_start(b) => {
                // `ident_cont` holds for every byte >= 0x80, so a multibyte character is
                // taken whole and the end is a character boundary.
                let b = self.bytes();
                let mut i = start + 1;
                while b.get(i).is_some_and(|&c| is_ident_cont(c)) {
                    i += 1;
                }
                end = i;
                kind = Kind::Ident;
            }
            _ if is_op_char(b) => {
                end = self.operator(start)?;
                kind = Kind::Op;
            }
            _ => {
                // Any other character: one (UTF-8) character, returned as itself.
                let ch_len = self
                    .sql
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .map(char::len_utf8)
                    .unwrap_or(1);
                end = start + ch_len;
                kind = Kind::Other;
            }
        }
        self.pos = end;
        Ok(self.tok(kind, start, end))
    }

    #[inline(always)]
    fn tok(&self, kind: Kind, start: usize, end: usize) -> Token {
        let kw = if matches!(kind, Kind::Ident) {
            keywords::lookup_in(self.bytes(), start, end)
        } else {
            Kw::None
        };
        Token {
            kind,
            start: start as u32,
            end: end as u32,
            kw,
        }
    }

    /// A quoted string whose body starts at `i` (after the opening quote); returns the end
    /// (after the closing quote, including any continuation segments).
    fn quoted_string(&self, mut i: usize, kind: StrKind) -> Result<usize, LexError> {
        let b = self.bytes();
        // E'' strings: escapes are checked as scan.l does (Unicode escapes, surrogate
        // pairs, and that the bytes octal/hex escapes produce are valid UTF-8).
        let mut esc = EscapeCheck::default();
        loop {
            // Body of one segment.
            loop {
                match b.get(i) {
                    None => return Err(LexError("unterminated quoted string")),
                    Some(b'\\') if kind == StrKind::Escape => {
                        // scan.l `xeescape`, `xeoctesc`, `xehexesc`, `xeunicode`: a
                        // backslash always consumes at least the next character.
                        i = esc.escape(b, i)?;
                    }
                    Some(b'\'') => {
                        // scan.l `xqdouble {quote}{quote}` exists in xq, xe and xus only;
                        // in B'' and X'' the second quote starts a new literal.
                        if b.get(i + 1) == Some(&b'\'')
                            && matches!(
                                kind,
                                StrKind::Standard | StrKind::Escape | StrKind::Unicode
                            )
                        {
                            if kind == StrKind::Escape {
                                esc.byte(b'\'')?;
                            }
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        if kind == StrKind::Escape {
                            esc.byte(c)?;
                        }
                        i += 1;
                    }
                }
            }
            // scan.l `quotecontinue {whitespace_with_newline}{quote}`: two literals
            // separated only by whitespace containing a newline are one literal.
            match quote_continue(b, i) {
                Some(j) => i = j + 1,
                None => {
                    esc.finish()?;
                    return Ok(i);
                }
            }
        }
    }

    /// After `U&'…'`/`U&"…"`: an optional `UESCAPE 'c'`. Returns the escape character and
    /// the end of the token.
    fn uescape(&self, body_end: usize) -> Result<(char, usize), LexError> {
        let mut probe = Lexer::at(self.sql, body_end);
        let Ok(t) = probe.next_token() else {
            return Ok(('\\', body_end));
        };
        if !t.is_kw(self.sql, "uescape") {
            return Ok(('\\', body_end));
        }
        let s = probe.next_token()?;
        if s.kind != Kind::Str(StrKind::Standard) {
            return Err(LexError(
                "UESCAPE must be followed by a simple string literal",
            ));
        }
        let body = self
            .sql
            .get(s.start as usize + 1..s.end as usize - 1)
            .unwrap_or("");
        let mut chars = body.chars();
        match (chars.next(), chars.next()) {
            // scan.l / parser.c check_uescapechar: not hex digit, +, ', ", or whitespace.
            (Some(c), None)
                if !(c.is_ascii_hexdigit()
                    || matches!(c, '+' | '\'' | '"')
                    || (c.is_ascii() && is_space(c as u8))) =>
            {
                Ok((c, s.end as usize))
            }
            _ => Err(LexError("invalid Unicode escape character")),
        }
    }

    /// `$tag$…$tag$` starting at `start` (the first `$`). `None` when `$` does not start a
    /// valid delimiter (scan.l `dolqfailed`).
    fn dollar_quote(&self, start: usize) -> Result<Option<usize>, LexError> {
        let b = self.bytes();
        let mut i = start + 1;
        if b.get(i).is_some_and(|&c| is_ident_start(c)) {
            i += 1;
            while b.get(i).is_some_and(|&c| is_dolq_cont(c)) {
                i += 1;
            }
        }
        if b.get(i) != Some(&b'$') {
            return Ok(None);
        }
        let delim = &b[start..=i];
        let body = i + 1;
        let hay = &b[body..];
        match find(hay, delim) {
            Some(p) => Ok(Some(body + p + delim.len())),
            None => Err(LexError("unterminated dollar-quoted string")),
        }
    }

    /// Numeric literal at `start` (scan.l `decinteger`, `hexinteger`, `octinteger`,
    /// `bininteger`, `numeric`, `real`, and the `*junk`/`*fail` rules that reject
    /// trailing identifier characters).
    fn number(&self, start: usize) -> Result<usize, LexError> {
        let b = self.bytes();
        let rest = self.sql.get(start..).unwrap_or("");
        let mut i = start;
        let radix: Option<fn(char) -> bool> = match (b.get(start), b.get(start + 1)) {
            (Some(b'0'), Some(b'x' | b'X')) => Some(|c| c.is_ascii_hexdigit()),
            (Some(b'0'), Some(b'o' | b'O')) => Some(|c| matches!(c, '0'..='7')),
            (Some(b'0'), Some(b'b' | b'B')) => Some(|c| matches!(c, '0' | '1')),
            _ => None,
        };
        if let Some(digit) = radix {
            // `0[xX](_?{hexdigit})+`
            let after = rest.get(2..).unwrap_or("");
            let after_us = after.strip_prefix('_').unwrap_or(after);
            if !after_us.starts_with(digit) {
                return Err(LexError("invalid hexadecimal/octal/binary integer"));
            }
            let (r, _) =
                digits_with_underscores(after_us, digit).map_err(|_| LexError("bad number"))?;
            i = self.sql.len() - r.len();
        } else {
            if b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                let (r, _) = digits_with_underscores(rest, |c| c.is_ascii_digit())
                    .map_err(|_| LexError("bad number"))?;
                i = self.sql.len() - r.len();
                // `{decinteger}\.\.` is an integer followed by `..`.
                if b.get(i) == Some(&b'.') && b.get(i + 1) != Some(&b'.') {
                    i += 1;
                    if b.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        let r2 = self.sql.get(i..).unwrap_or("");
                        let (r, _) = digits_with_underscores(r2, |c| c.is_ascii_digit())
                            .map_err(|_| LexError("bad number"))?;
                        i = self.sql.len() - r.len();
                    }
                }
            } else {
                // `.{decinteger}`
                i += 1;
                let r2 = self.sql.get(i..).unwrap_or("");
                let (r, _) = digits_with_underscores(r2, |c| c.is_ascii_digit())
                    .map_err(|_| LexError("bad number"))?;
                i = self.sql.len() - r.len();
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(b.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if !b.get(j).is_some_and(|c| c.is_ascii_digit()) {
                    // scan.l `realfail`.
                    return Err(LexError("trailing junk after numeric literal"));
                }
                let r2 = self.sql.get(j..).unwrap_or("");
                let (r, _) = digits_with_underscores(r2, |c| c.is_ascii_digit())
                    .map_err(|_| LexError("bad number"))?;
                i = self.sql.len() - r.len();
            }
        }
        // scan.l (PostgreSQL 15+) `integer_junk {decinteger}{identifier}`, `numeric_junk`,
        // `real_junk`: flex takes the longest match, so it is an error when some decimal
        // prefix of the literal followed by an identifier reaches past the literal's end
        // (`123abc`, `1_0$`, `0x1Fg`, `1e5$`).
        let mut run_end = 0usize;
        for k in start + 1..=i {
            if !b.get(k).is_some_and(|&c| is_ident_start(c)) {
                continue;
            }
            let prefix = &b[start..k];
            let decimal_prefix = prefix.iter().all(|c| {
                c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'e' | b'E' | b'+' | b'-')
            }) && prefix.iter().any(u8::is_ascii_digit)
                && prefix
                    .last()
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.');
            if !decimal_prefix {
                continue;
            }
            if run_end <= k {
                // Identifier characters from k on (shared by every k inside one run).
                run_end = k + 1;
                while b.get(run_end).is_some_and(|&c| is_ident_cont(c)) {
                    run_end += 1;
                }
            }
            if run_end > i {
                return Err(LexError("trailing junk after numeric literal"));
            }
        }
        Ok(i)
    }

    /// scan.l `{operator}` action: stop before an embedded `/*` or `--`, and drop trailing
    /// `+`/`-` unless the operator contains one of `~ ! @ # ^ & | \` ? %` (so that
    /// `a=-1` lexes as `=` `-` `1`).
    fn operator(&self, start: usize) -> Result<usize, LexError> {
        let b = self.bytes();
        let mut end = start;
        while b.get(end).is_some_and(|&c| is_op_char(c)) {
            end += 1;
        }
        let text = &b[start..end];
        let mut n = text.len();
        for k in 0..text.len().saturating_sub(1) {
            if (text[k] == b'/' && text[k + 1] == b'*') || (text[k] == b'-' && text[k + 1] == b'-')
            {
                n = k;
                break;
            }
        }
        if n > 1 && matches!(text[n - 1], b'+' | b'-') {
            let special = text[..n - 1].iter().any(|c| {
                matches!(
                    c,
                    b'~' | b'!' | b'@' | b'#' | b'^' | b'&' | b'|' | b'`' | b'?' | b'%'
                )
            });
            if !special {
                while n > 1 && matches!(text[n - 1], b'+' | b'-') {
                    n -= 1;
                }
            }
        }
        // scan.l: "Complain if operator is too long" (NAMEDATALEN).
        if n > MAX_IDENT_BYTES {
            return Err(LexError("operator too long"));
        }
        Ok(start + n.max(1))
    }
}

/// The checks scan.l makes on the contents of an `E'…'` literal.
#[derive(Default)]
struct EscapeCheck {
    /// A UTF-16 high surrogate waiting for its low half (`\uD83D\uDE00`).
    pending_high: Option<u32>,
    /// The UTF-8 sequence being assembled from the literal's bytes.
    seq: [u8; 4],
    have: usize,
    need: usize,
}

impl EscapeCheck {
    /// One byte of the literal's value: the value must be valid UTF-8 (scan.l calls
    /// `pg_verifymbstr` when an escape produced a non-ASCII byte; raw text is valid UTF-8
    /// already, so checking always gives the same answer).
    fn byte(&mut self, c: u8) -> Result<(), LexError> {
        if self.pending_high.is_some() {
            return Err(LexError("invalid Unicode surrogate pair"));
        }
        self.raw(c)
    }

    fn raw(&mut self, c: u8) -> Result<(), LexError> {
        let bad = LexError("invalid byte sequence for encoding \"UTF8\"");
        if self.have == 0 {
            self.need = match c {
                0x00 => return Err(bad),
                0x01..=0x7f => return Ok(()),
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => return Err(bad),
            };
        }
        self.seq[self.have] = c;
        self.have += 1;
        if self.have == self.need {
            self.have = 0;
            if std::str::from_utf8(&self.seq[..self.need]).is_err() {
                return Err(bad);
            }
        }
        Ok(())
    }

    fn code_point(&mut self, v: u32) -> Result<(), LexError> {
        // scan.l `addunicode` / `check_unicode_value`.
        if (0xD800..0xDC00).contains(&v) {
            if self.pending_high.is_some() {
                return Err(LexError("invalid Unicode surrogate pair"));
            }
            self.pending_high = Some(v);
            return Ok(());
        }
        let cp = if (0xDC00..0xE000).contains(&v) {
            let hi = self
                .pending_high
                .take()
                .ok_or(LexError("invalid Unicode surrogate pair"))?;
            0x10000 + ((hi - 0xD800) << 10) + (v - 0xDC00)
        } else {
            if self.pending_high.is_some() {
                return Err(LexError("invalid Unicode surrogate pair"));
            }
            v
        };
        if cp == 0 {
            return Err(LexError("invalid Unicode escape value"));
        }
        let ch = char::from_u32(cp).ok_or(LexError("invalid Unicode escape value"))?;
        let mut tmp = [0u8; 4];
        for &x in ch.encode_utf8(&mut tmp).as_bytes() {
            self.raw(x)?;
        }
        Ok(())
    }

    /// The escape at `i` (a backslash); returns the position after it.
    fn escape(&mut self, b: &[u8], i: usize) -> Result<usize, LexError> {
        let hex = |from: usize, n: usize| -> Option<u32> {
            let digits = b.get(from..from + n)?;
            let mut v = 0u32;
            for &d in digits {
                v = v * 16 + (d as char).to_digit(16)?;
            }
            Some(v)
        };
        match b.get(i + 1) {
            None => Err(LexError("unterminated quoted string")),
            // `xeunicode [\\](u{xehexdigit}{4}|U{xehexdigit}{8})`, else `xeunicodefail`.
            Some(b'u') => {
                let v = hex(i + 2, 4).ok_or(LexError("invalid Unicode escape"))?;
                self.code_point(v)?;
                Ok(i + 6)
            }
            Some(b'U') => {
                let v = hex(i + 2, 8).ok_or(LexError("invalid Unicode escape"))?;
                self.code_point(v)?;
                Ok(i + 10)
            }
            // `xeoctesc [\\][0-7]{1,3}`: the value is truncated to a byte.
            Some(b'0'..=b'7') => {
                let mut j = i + 1;
                let mut v = 0u32;
                while j < i + 4 && b.get(j).is_some_and(|d| (b'0'..=b'7').contains(d)) {
                    v = v * 8 + u32::from(b[j] - b'0');
                    j += 1;
                }
                self.byte((v & 0xff) as u8)?;
                Ok(j)
            }
            // `xehexesc [\\]x{xehexdigit}{1,2}`; `\x` without digits is just `x`.
            Some(b'x') if b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) => {
                let mut j = i + 2;
                let mut v = 0u32;
                while j < i + 4 && b.get(j).is_some_and(u8::is_ascii_hexdigit) {
                    v = v * 16 + (b[j] as char).to_digit(16).unwrap_or(0);
                    j += 1;
                }
                self.byte(v as u8)?;
                Ok(j)
            }
            // `xeescape [\\][^0-7]`: the next character (any, multibyte included).
            Some(&c) => {
                let len = match c {
                    0x00..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                for k in 0..len {
                    if let Some(&x) = b.get(i + 1 + k) {
                        self.byte(x)?;
                    }
                }
                Ok(i + 1 + len)
            }
        }
    }

    fn finish(&self) -> Result<(), LexError> {
        if self.pending_high.is_some() {
            return Err(LexError("invalid Unicode surrogate pair"));
        }
        if self.have != 0 {
            return Err(LexError("invalid byte sequence for encoding \"UTF8\""));
        }
        Ok(())
    }
}

/// End (after the closing quote) of a `"…"` identifier whose body starts at `i`.
fn quoted_ident_end(b: &[u8], mut i: usize) -> Result<usize, LexError> {
    let body_start = i;
    loop {
        match b.get(i) {
            None => return Err(LexError("unterminated quoted identifier")),
            Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
            Some(b'"') => {
                if i == body_start {
                    return Err(LexError("zero-length delimited identifier"));
                }
                return Ok(i + 1);
            }
            Some(_) => i += 1,
        }
    }
}

/// End of a (nested) block comment starting at `start` (`/*`).
fn skip_block_comment(b: &[u8], start: usize) -> Result<usize, LexError> {
    let mut depth = 0usize;
    let mut i = start;
    loop {
        match (b.get(i), b.get(i + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Ok(i);
                }
            }
            (Some(_), _) => i += 1,
            (None, _) => return Err(LexError("unterminated /* comment")),
        }
    }
}

/// scan.l: `whitespace_with_newline {horiz_whitespace}*{newline}{special_whitespace}*`
/// followed by a quote. Returns the position of that quote.
fn quote_continue(b: &[u8], mut i: usize) -> Option<usize> {
    let skip_dash_comment = |i: usize| -> Option<usize> {
        if b.get(i) == Some(&b'-') && b.get(i + 1) == Some(&b'-') {
            let mut j = i + 2;
            while b.get(j).is_some_and(|&c| !is_newline(c)) {
                j += 1;
            }
            Some(j)
        } else {
            None
        }
    };
    loop {
        match b.get(i) {
            Some(&c) if is_horiz_space(c) => i += 1,
            Some(b'-') => i = skip_dash_comment(i)?,
            Some(&c) if is_newline(c) => break,
            _ => return None,
        }
    }
    // special_whitespace: ({space}+ | {comment}{newline})
    loop {
        match b.get(i) {
            Some(&c) if is_space(c) => i += 1,
            Some(b'-') => {
                let j = skip_dash_comment(i)?;
                if !b.get(j).is_some_and(|&c| is_newline(c)) {
                    return None;
                }
                i = j;
            }
            Some(b'\'') => return Some(i),
            _ => return None,
        }
    }
}

/// First occurrence of `needle` in `hay` (both short-circuiting, no allocation).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..].iter().position(|&c| c == first) {
            Some(p) => {
                i += p;
                if hay.get(i..i + needle.len()) == Some(needle) {
                    return Some(i);
                }
                i += 1;
            }
            None => return None,
        }
    }
    None
}

/// A normalised identifier in a fixed buffer: what PostgreSQL stores for a name.
#[derive(Clone, Copy)]
pub struct Name {
    buf: [u8; MAX_IDENT_BYTES],
    len: u8,
}

impl Default for Name {
    fn default() -> Self {
        Name {
            buf: [0; MAX_IDENT_BYTES],
            len: 0,
        }
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl PartialEq for Name {
    fn eq(&self, o: &Self) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl Name {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
    /// The name's bytes (UTF-8: only whole characters are ever pushed).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
    /// Whether `t` (a name token) normalises to this name; plain ASCII identifiers are
    /// compared in place, without building their name.
    pub fn eq_token(&self, t: &Token, sql: &str) -> bool {
        if t.kind == Kind::Ident {
            let b = t.text(sql).as_bytes();
            if b.is_ascii() {
                let b = b.get(..b.len().min(MAX_IDENT_BYTES)).unwrap_or(b);
                // The token folds to lower case; this name may hold capitals (quoted).
                let me = self.as_bytes();
                return me.len() == b.len()
                    && me.iter().zip(b).all(|(&x, &y)| x == y.to_ascii_lowercase());
            }
        }
        Name::of_token(t, sql).is_ok_and(|n| n == *self)
    }

    /// A name from its (already normalised) characters, truncated like PostgreSQL does.
    pub fn from_chars(chars: impl Iterator<Item = char>) -> Name {
        let mut n = Name::default();
        for c in chars {
            if !n.push(c) {
                break;
            }
        }
        n
    }
    pub fn from_str_truncated(s: &str) -> Name {
        let mut n = Name::default();
        for c in s.chars() {
            if !n.push(c) {
                break;
            }
        }
        n
    }
    /// Appends `c`; `false` (and nothing appended) once the 63-byte limit is reached:
    /// PostgreSQL truncates identifiers there, on a character boundary.
    fn push(&mut self, c: char) -> bool {
        let mut tmp = [0u8; 4];
        let enc = c.encode_utf8(&mut tmp).as_bytes();
        let l = usize::from(self.len);
        if l + enc.len() > MAX_IDENT_BYTES {
            return false;
        }
        self.buf[l..l + enc.len()].copy_from_slice(enc);
        self.len += enc.len() as u8;
        true
    }

    /// The normalised name of an identifier token. scan.l / scansup.c `downcase_identifier`:
    /// unquoted identifiers fold ASCII `A`–`Z` only (multibyte characters are kept as they
    /// are); `""` in a quoted identifier is one `"`; `U&"…"` escapes are decoded.
    pub fn of_token(t: &Token, sql: &str) -> Result<Name, LexError> {
        let text = t.text(sql);
        let mut n = Name::default();
        match t.kind {
            Kind::Ident if text.is_ascii() => {
                // The common case: ASCII folding of a byte copy, truncated at 63 bytes.
                let b = text.as_bytes();
                let l = b.len().min(MAX_IDENT_BYTES);
                if let (Some(dst), Some(src)) = (n.buf.get_mut(..l), b.get(..l)) {
                    dst.copy_from_slice(src);
                    dst.make_ascii_lowercase();
                    n.len = l as u8;
                }
            }
            Kind::Ident => {
                for c in text.chars() {
                    if !n.push(c.to_ascii_lowercase()) {
                        break;
                    }
                }
            }
            Kind::QuotedIdent => {
                let body = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
                let mut chars = body.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '"' {
                        chars.next();
                    }
                    if !n.push(c) {
                        break;
                    }
                }
            }
            Kind::UnicodeIdent => {
                // `U&"` … `"` [UESCAPE 'c']
                let close = quoted_ident_end(text.as_bytes(), 3)?;
                let (esc, _) = Lexer::at(sql, 0).uescape(t.start as usize + close)?;
                let body = text.get(3..close - 1).unwrap_or("");
                let mut out = Ok(());
                decode_unicode_escapes(body, esc, true, |c| {
                    if out.is_ok() && !n.push(c) {
                        out = Err(());
                    }
                })?;
            }
            Kind::Str(StrKind::Standard) => {
                let body = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
                let mut chars = body.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '\'' && chars.next() != Some('\'') {
                        // A quote not doubled: the literal continues after a newline
                        // (`'ro'` ⏎ `'le'` is `'role'`), which is not followed here.
                        return Err(LexError("a string literal continued on another line"));
                    }
                    if !n.push(c) {
                        break;
                    }
                }
            }
            _ => return Err(LexError("not a name")),
        }
        Ok(n)
    }
}

/// Decodes `\XXXX`, `\+XXXXXX` and `\\` (with `esc` in place of `\`), including UTF-16
/// surrogate pairs as PostgreSQL accepts them. `doubled_quote` collapses `""`.
fn decode_unicode_escapes(
    body: &str,
    esc: char,
    doubled_quote: bool,
    mut out: impl FnMut(char),
) -> Result<(), LexError> {
    let mut chars = body.chars().peekable();
    let mut pending_high: Option<u32> = None;
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
        let mut v = 0u32;
        for _ in 0..n {
            let d = chars
                .next()
                .and_then(|c| c.to_digit(16))
                .ok_or(LexError("invalid Unicode escape"))?;
            v = v * 16 + d;
        }
        Ok::<u32, LexError>(v)
    };
    while let Some(c) = chars.next() {
        if c == esc {
            if chars.peek() == Some(&esc) {
                chars.next();
                if pending_high.is_some() {
                    return Err(LexError("invalid Unicode surrogate pair"));
                }
                out(esc);
                continue;
            }
            let v = if chars.peek() == Some(&'+') {
                chars.next();
                hex(&mut chars, 6)?
            } else {
                hex(&mut chars, 4)?
            };
            if (0xD800..0xDC00).contains(&v) {
                if pending_high.is_some() {
                    return Err(LexError("invalid Unicode surrogate pair"));
                }
                pending_high = Some(v);
                continue;
            }
            let cp = if (0xDC00..0xE000).contains(&v) {
                let hi = pending_high
                    .take()
                    .ok_or(LexError("invalid Unicode surrogate pair"))?;
                0x10000 + ((hi - 0xD800) << 10) + (v - 0xDC00)
            } else {
                if pending_high.is_some() {
                    return Err(LexError("invalid Unicode surrogate pair"));
                }
                v
            };
            if cp == 0 {
                return Err(LexError("invalid Unicode escape value"));
            }
            out(char::from_u32(cp).ok_or(LexError("invalid Unicode escape value"))?);
        } else {
            if pending_high.is_some() {
                return Err(LexError("invalid Unicode surrogate pair"));
            }
            if doubled_quote && c == '"' {
                chars.next();
            }
            out(c);
        }
    }
    if pending_high.is_some() {
        return Err(LexError("invalid Unicode surrogate pair"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_match_scan_l() {
        for b in 0..=255u8 {
            let start = b.is_ascii_alphabetic() || b == b'_' || b >= 0x80;
            assert_eq!(is_ident_start(b), start, "ident_start {b:#x}");
            assert_eq!(
                is_ident_cont(b),
                start || b.is_ascii_digit() || b == b'$',
                "ident_cont {b:#x}"
            );
            assert_eq!(
                is_space(b),
                matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b),
                "space {b:#x}"
            );
            assert_eq!(
                CLASS[usize::from(b)] & C_PLAIN_IDENT_START != 0,
                start && !b"eEbBxXnNuU".contains(&b),
                "plain ident start {b:#x}"
            );
        }
    }

    /// `next_or_eof`'s fast path and the general `lex` agree token by token on every
    /// string of up to three pieces from an alphabet of tricky fragments.
    #[test]
    fn fast_path_agrees_with_the_general_lexer() {
        let pieces = [
            "",
            " ",
            "\t\x0b\x0c",
            "a",
            "E",
            "e'x'",
            "B'1'",
            "x'1f'",
            "N'n'",
            "n",
            "U&'a'",
            "u&\"a\"",
            "U&x",
            "select",
            "SELECT",
            "_a$1",
            "\u{e9}t\u{e9}",
            "(",
            ")",
            ",",
            ";",
            "--c\n",
            "/*c*/",
            "/* /* */ */",
            "-",
            "/",
            "'",
            "\"",
            "$1",
            "$$x$$",
            ".",
            "..",
            ":",
            "::",
            "1",
            "1.5e3",
            "0x1F",
            "=",
            "<>",
            "\\",
            "{",
            "+",
            "*",
            "<=",
            "!",
            "@-",
            "#",
            "$123456789",
            "$1234567890",
            "$2147483648",
            "$0",
            "$",
            "$a",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let sql = format!("{a}{b}{c}");
                    let (mut fast, mut slow) = (Lexer::new(&sql), Lexer::new(&sql));
                    loop {
                        let mut err = None;
                        let f = fast.next_or_eof(&mut err);
                        let s = slow.next_token();
                        match s {
                            Ok(s) => {
                                assert_eq!(f, s, "{sql:?}");
                                assert!(err.is_none(), "{sql:?}");
                                assert_eq!(fast.pos(), slow.pos(), "{sql:?}");
                                if s.kind == Kind::Eof {
                                    break;
                                }
                            }
                            Err(e) => {
                                assert_eq!(f.kind, Kind::Eof, "{sql:?}");
                                assert_eq!(err, Some(e), "{sql:?}");
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn next_or_eof_reports_errors_as_eof() {
        let mut lx = Lexer::new("select 'unterminated");
        let mut err = None;
        assert_eq!(lx.next_or_eof(&mut err).kind, Kind::Ident);
        assert!(err.is_none());
        let t = lx.next_or_eof(&mut err);
        assert_eq!(t.kind, Kind::Eof);
        assert_eq!(err, Lexer::new("'unterminated").next_token().err());
        assert!(err.is_some());
    }

    fn kinds(sql: &str) -> Result<Vec<(Kind, &str)>, LexError> {
        let mut lx = Lexer::new(sql);
        let mut v = Vec::new();
        loop {
            let t = lx.next_token()?;
            if t.kind == Kind::Eof {
                return Ok(v);
            }
            v.push((t.kind, t.text(sql)));
        }
    }
    fn texts(sql: &str) -> Vec<&str> {
        kinds(sql)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    #[test]
    fn whitespace_includes_form_feed_and_vertical_tab() {
        assert_eq!(texts("select\x0c1\x0b,\r\n2"), ["select", "1", ",", "2"]);
    }

    #[test]
    fn comments_nest() {
        assert_eq!(texts("a /* x /* y */ ; */ b -- c ;\n d"), ["a", "b", "d"]);
        assert!(kinds("a /* /* */").is_err());
        assert_eq!(texts("/* ; */"), Vec::<&str>::new());
    }

    #[test]
    fn strings_and_continuation() {
        assert_eq!(texts("'a''b' x"), ["'a''b'", "x"]);
        // Continuation only across whitespace with a newline.
        assert_eq!(texts("'a'\n  'b'"), ["'a'\n  'b'"]);
        assert_eq!(texts("'a' 'b'"), ["'a'", "'b'"]);
        assert_eq!(texts("'a' -- c\n'b'"), ["'a' -- c\n'b'"]);
        assert_eq!(texts("'a' /* c */\n'b'"), ["'a'", "'b'"]);
        assert!(kinds("'abc").is_err());
        // Backslash is ordinary in standard strings, an escape in E strings.
        assert_eq!(texts(r"'a\' x"), [r"'a\'", "x"]);
        assert!(kinds(r"E'a\' x").is_err());
        assert_eq!(texts(r"E'a\'b' x"), [r"E'a\'b'", "x"]);
        assert_eq!(
            kinds("B'01'").unwrap_or_default()[0].0,
            Kind::Str(StrKind::Bit)
        );
        assert_eq!(
            kinds("X'1F'").unwrap_or_default()[0].0,
            Kind::Str(StrKind::Hex)
        );
        // N'x' is NCHAR followed by a plain literal, as in scan.l.
        assert_eq!(texts("N'x'"), ["N", "'x'"]);
        assert_eq!(texts("B'01''10'"), ["B'01'", "'10'"]);
    }

    #[test]
    fn dollar_quotes() {
        assert_eq!(texts("select $$;$$"), ["select", "$$;$$"]);
        assert_eq!(texts("$a$ $$ ; $a$ x"), ["$a$ $$ ; $a$", "x"]);
        assert_eq!(kinds("$1").unwrap_or_default()[0].0, Kind::Param);
        // PostgreSQL 18: `$1a` is `$1` `a`; parameter numbers are int32.
        assert_eq!(texts("$1a"), ["$1", "a"]);
        assert!(kinds("$2147483648").is_err());
        assert!(kinds("$2147483647").is_ok());
        assert_eq!(texts("$1_0$"), ["$1", "_0$"]);
        assert!(kinds("$x$ never closed").is_err());
        // `a$b$` is one identifier, not a dollar quote.
        assert_eq!(texts("a$b$ c"), ["a$b$", "c"]);
        assert_eq!(kinds("$ x").unwrap_or_default()[0].0, Kind::Other);
    }

    #[test]
    fn quoted_identifiers() {
        let sql = r#""a""b" "#;
        let t = Lexer::new(sql).next_token();
        assert_eq!(t.map(|t| t.kind), Ok(Kind::QuotedIdent));
        let n = t.and_then(|t| Name::of_token(&t, sql));
        assert_eq!(n.map(|n| n.as_str().to_owned()), Ok("a\"b".to_owned()));
        assert!(kinds(r#""""#).is_err());
        assert!(kinds(r#""abc"#).is_err());
    }

    #[test]
    fn unicode_identifiers() {
        let name = |sql: &str| {
            Lexer::new(sql)
                .next_token()
                .and_then(|t| Name::of_token(&t, sql))
                .map(|n| n.as_str().to_owned())
        };
        assert_eq!(name(r#"U&"\0064rop""#), Ok("drop".to_owned()));
        assert_eq!(name(r#"u&"d!0061t" UESCAPE '!'"#), Ok("dat".to_owned()));
        assert_eq!(name(r#"U&"\+01F600""#), Ok("\u{1F600}".to_owned()));
        assert!(name(r#"U&"\D83D""#).is_err());
        assert!(kinds(r#"U&"x" UESCAPE 'a'"#).is_err());
        // `u &` with a space is an identifier and an operator.
        assert_eq!(texts("u &x"), ["u", "&", "x"]);
    }

    #[test]
    fn case_folding_is_ascii_only() {
        let sql = "SeLeCt ÄbC";
        let mut lx = Lexer::new(sql);
        let _ = lx.next_token();
        let t = lx.next_token();
        let n = t.and_then(|t| Name::of_token(&t, sql));
        assert_eq!(n.map(|n| n.as_str().to_owned()), Ok("Äbc".to_owned()));
    }

    #[test]
    fn identifiers_truncate_at_63_bytes() {
        let long = "a".repeat(70);
        let t = Lexer::new(&long).next_token();
        let n = t.and_then(|t| Name::of_token(&t, &long));
        assert_eq!(n.map(|n| n.as_str().len()), Ok(63));
    }

    #[test]
    fn numbers() {
        for ok in [
            "1_000", "0x1F", "0o17", "0b101", "1.5e10", ".5", "1.", "1e-3", "0x_1", "1.5_0",
        ] {
            assert_eq!(texts(ok), [ok], "{ok}");
        }
        for bad in [
            "1_", "1__0", "0x", "123abc", "1e", "0b2", "1.5x", "1_0$", "0x1Fg", "1e5$",
        ] {
            assert!(kinds(bad).is_err(), "{bad}");
        }
        assert_eq!(texts("1..2"), ["1", "..", "2"]);
    }

    #[test]
    fn operators() {
        assert_eq!(texts("a=-1"), ["a", "=", "-", "1"]);
        assert_eq!(texts("a@-1"), ["a", "@-", "1"]);
        assert_eq!(texts("x::int"), ["x", "::", "int"]);
        assert_eq!(texts("a<>b>=c"), ["a", "<>", "b", ">=", "c"]);
        assert_eq!(texts("a*/*c*/b"), ["a", "*", "b"]);
        assert_eq!(texts("a+--c\nb"), ["a", "+", "b"]);
        assert_eq!(texts("f(a => 1)"), ["f", "(", "a", "=>", "1", ")"]);
        assert_eq!(texts("a := 1"), ["a", ":=", "1"]);
        assert_eq!(texts("a[1:2]"), ["a", "[", "1", ":", "2", "]"]);
        assert!(kinds(&format!("a {} b", "<".repeat(64))).is_err());
        assert!(kinds(&format!("a {} b", "<".repeat(63))).is_ok());
    }
}
