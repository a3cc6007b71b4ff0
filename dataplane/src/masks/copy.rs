//! Streaming rewrite of `COPY … TO STDOUT` data: the masked columns' values are replaced
//! (with [`super::value`]'s semantics, the same values as in query results) while the data
//! flows through, CopyData payload by payload, in text, CSV or binary format.
//!
//! The protocol does not align CopyData messages with rows: a row, even one field, may span
//! messages, and one message may hold several rows. [`CopyRewriter`] therefore keeps its
//! place (format state, row, field) across calls and never buffers a value: unmasked bytes
//! are copied as slices, a masked value streams into its hash ([`ValueHasher`]), and a
//! replacement is written as soon as it is known (`null` at the start of the field, `redact`
//! once the field is known not to be NULL, `hash` at its end; in binary format the new length
//! word goes out at the start of the field). Steady state allocates nothing: the only buffer
//! is reused, and `out` is the caller's.
//!
//! Byte-level parsing assumes an ASCII-safe client encoding: PostgreSQL does not escape
//! bytes inside multibyte characters of SJIS, BIG5, GBK, UHC or GB18030, so the caller must
//! refuse masked COPY under those `client_encoding`s.
//!
//! What this module must never do: pass a masked column's value, or any part of it, through
//! (a row whose fields cannot be told apart — wrong field count, malformed syntax — is an
//! error, and so is every call after one: the position is no longer known); change an
//! unmasked byte; or put any part of the data into an error. On error the call appends
//! nothing to `out`.

use super::value::{
    Family, Format, HashKey, MaskAction, MaskError, REDACTED, ValueHasher, hash_len, hex_value,
    supports,
};

/// The format of the COPY data, with the options that change its syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text {
        delimiter: u8,
        null: Vec<u8>,
    },
    Csv {
        delimiter: u8,
        null: Vec<u8>,
        quote: u8,
        escape: u8,
    },
    Binary,
}

impl CopyFormat {
    /// Text with PostgreSQL's defaults: tab, `\N`.
    pub fn text() -> Self {
        Self::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
        }
    }

    /// CSV with PostgreSQL's defaults: comma, empty null string, `"` as quote and escape.
    pub fn csv() -> Self {
        Self::Csv {
            delimiter: b',',
            null: Vec::new(),
            quote: b'"',
            escape: b'"',
        }
    }
}

/// One output column of the COPY, in order: what to do with its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyColumn {
    pub mask: Option<(MaskAction, Family)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPlan {
    pub format: CopyFormat,
    pub header: bool,
    pub columns: Vec<CopyColumn>,
}

/// Rewrites one COPY's data; built once per COPY.
pub struct CopyRewriter {
    cfg: Config,
    st: State,
    failed: Option<MaskError>,
}

struct Config {
    syntax: Syntax,
    null: Vec<u8>,
    columns: Vec<CopyColumn>,
    /// The bytes a scan stops at: text: delimiter, LF, CR, backslash; CSV: delimiter,
    /// quote, LF, CR (outside quotes).
    stops: [bool; 256],
    /// CSV inside quotes: quote, escape.
    quoted: [bool; 256],
}

#[derive(Clone, Copy)]
enum Syntax {
    Text { delim: u8 },
    Csv(Csv),
    Binary,
}

#[derive(Clone, Copy)]
struct Csv {
    delim: u8,
    quote: u8,
    escape: u8,
}

struct State {
    /// The header row is still to come (its fields pass through).
    header: bool,
    /// 1-based number of the current row (binary: of the last tuple begun).
    row: u64,
    field: usize,
    /// Bytes of the current row were consumed (so the data cannot end here).
    row_open: bool,
    mode: Mode,
    bin: Bin,
    hasher: Option<ValueHasher>,
    scratch: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Plain,
    /// Text: after a backslash, the next byte belongs to the field whatever it is.
    Backslash,
    /// CSV: inside quotes.
    Quoted,
    /// CSV: after the escape character inside quotes (if escape = quote, maybe the closing quote).
    QuotedEscape,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Field `field` begins at the next byte.
    FieldStart,
    /// Scanning a field: copied (unmasked; may run on through many fields and rows) or
    /// discarded (a masked field whose replacement is already written).
    Pass { copy: bool, lex: Lex },
    /// A masked field whose raw bytes so far are the first `k` bytes of the null string;
    /// `esc`: the last of them is an unpaired backslash (text).
    Prefix { k: usize, esc: bool },
    /// A masked non-NULL text-format field being unescaped into the hasher.
    TextValue(TextEsc),
    /// A masked non-NULL CSV field being unquoted into the hasher.
    CsvValue(Lex),
    /// After a CR ending a row: an LF must follow.
    Cr,
}

/// Copying from the start of a field.
const COPYING: Mode = Mode::Pass {
    copy: true,
    lex: Lex::Plain,
};
/// Discarding from the start of a field.
const DISCARDING: Mode = Mode::Pass {
    copy: false,
    lex: Lex::Plain,
};

/// Text-format unescaping of a masked value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextEsc {
    Plain,
    Backslash,
    Octal { digits: u8, value: u16 },
    Hex { digits: u8, value: u8 },
}

#[derive(Clone, Copy)]
enum Bin {
    Signature(usize),
    Flags(Acc<4>),
    ExtensionLength(Acc<4>),
    Extension(u32),
    FieldCount(Acc<2>),
    FieldLength(Acc<4>),
    Copy(u32),
    Skip(u32),
    Hash(u32),
    Done,
}

/// A masked field without its hasher: a bug here, never a property of the data.
const NO_HASHER: MaskError = MaskError::CopyMalformed("internal: no hasher");

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// A big-endian integer arriving in pieces.
#[derive(Clone, Copy)]
struct Acc<const N: usize> {
    buf: [u8; N],
    got: usize,
}

impl<const N: usize> Acc<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            got: 0,
        }
    }

    /// Takes what it still needs from `p[i..]`; returns the new position and, once
    /// complete, the bytes.
    fn fill(&mut self, p: &[u8], i: usize) -> (usize, Option<[u8; N]>) {
        let take = (N - self.got).min(p.len() - i);
        self.buf[self.got..self.got + take].copy_from_slice(&p[i..i + take]);
        self.got += take;
        (i + take, (self.got == N).then_some(self.buf))
    }
}

/// The output of one call: `p[run..]` up to the current position is to be copied through;
/// skipping or writing flushes it first, so output stays in input order.
struct Sink<'a> {
    p: &'a [u8],
    run: usize,
    out: &'a mut Vec<u8>,
}

impl Sink<'_> {
    /// `p[from..to]` is not passed through.
    fn skip(&mut self, from: usize, to: usize) {
        self.out.extend_from_slice(&self.p[self.run..from]);
        self.run = to;
    }

    /// The output, for writing at position `at` of the payload.
    fn at(&mut self, at: usize) -> &mut Vec<u8> {
        self.skip(at, at);
        self.out
    }
}

impl CopyRewriter {
    /// Checks the plan as PostgreSQL checks COPY options (so that the syntax is
    /// unambiguous) and that every mask can be applied.
    pub fn new(plan: CopyPlan) -> Result<Self, MaskError> {
        let CopyPlan {
            format,
            header,
            columns,
        } = plan;
        if columns.is_empty() {
            return Err(MaskError::CopyPlan("a COPY without columns"));
        }
        for (action, family) in columns.iter().filter_map(|c| c.mask) {
            if !supports(action, family) {
                return Err(MaskError::Unsupported { action, family });
            }
        }
        let table = |bytes: &[u8]| {
            let mut t = [false; 256];
            for &b in bytes {
                t[usize::from(b)] = true;
            }
            t
        };
        let line_end = |b: u8| b == b'\n' || b == b'\r';
        let (syntax, null, stops, quoted) = match format {
            CopyFormat::Binary if header => {
                return Err(MaskError::CopyPlan(
                    "HEADER is not allowed in binary format",
                ));
            }
            CopyFormat::Binary => (Syntax::Binary, Vec::new(), [false; 256], [false; 256]),
            CopyFormat::Text { delimiter, null } => {
                if b"\\\r\n.abcdefghijklmnopqrstuvwxyz0123456789".contains(&delimiter) {
                    return Err(MaskError::CopyPlan(
                        "the text format's delimiter is reserved",
                    ));
                }
                if null.iter().any(|&b| line_end(b) || b == delimiter) {
                    return Err(MaskError::CopyPlan(
                        "the null string holds the delimiter or a line end",
                    ));
                }
                let stops = table(&[delimiter, b'\n', b'\r', b'\\']);
                (Syntax::Text { delim: delimiter }, null, stops, [false; 256])
            }
            CopyFormat::Csv {
                delimiter,
                null,
                quote,
                escape,
            } => {
                if line_end(delimiter) || line_end(quote) || delimiter == quote {
                    return Err(MaskError::CopyPlan(
                        "the CSV delimiter and quote must differ and not be line ends",
                    ));
                }
                if null
                    .iter()
                    .any(|&b| line_end(b) || b == delimiter || b == quote)
                {
                    return Err(MaskError::CopyPlan(
                        "the null string holds the delimiter, the quote or a line end",
                    ));
                }
                let syntax = Syntax::Csv(Csv {
                    delim: delimiter,
                    quote,
                    escape,
                });
                let stops = table(&[delimiter, quote, b'\n', b'\r']);
                (syntax, null, stops, table(&[quote, escape]))
            }
        };
        let row = u64::from(!matches!(syntax, Syntax::Binary));
        Ok(Self {
            cfg: Config {
                syntax,
                null,
                columns,
                stops,
                quoted,
            },
            st: State {
                header,
                row,
                field: 0,
                row_open: false,
                mode: Mode::FieldStart,
                bin: Bin::Signature(0),
                hasher: None,
                // Longest replacement: a text-format uuid (36 bytes).
                scratch: Vec::with_capacity(64),
            },
            failed: None,
        })
    }

    /// One CopyData payload: appends its rewritten bytes to `out` (possibly none, when it
    /// ends inside a masked field).
    pub fn rewrite(
        &mut self,
        payload: &[u8],
        key: &HashKey,
        out: &mut Vec<u8>,
    ) -> Result<(), MaskError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let start = out.len();
        let mut sink = Sink {
            p: payload,
            run: 0,
            out,
        };
        let result = match self.cfg.syntax {
            Syntax::Binary => self.st.binary(&self.cfg, &mut sink, key),
            _ => self.st.textual(&self.cfg, &mut sink, key),
        };
        match result {
            Ok(()) => {
                sink.skip(payload.len(), payload.len());
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e);
                sink.out.truncate(start);
                Err(e)
            }
        }
    }

    /// CopyDone: the data must have ended at a row boundary (binary: after the trailer).
    pub fn finish(&mut self) -> Result<(), MaskError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let complete = match self.cfg.syntax {
            Syntax::Binary => matches!(self.st.bin, Bin::Done),
            _ => !self.st.row_open,
        };
        if complete {
            Ok(())
        } else {
            self.failed = Some(MaskError::CopyIncomplete);
            Err(MaskError::CopyIncomplete)
        }
    }
}

impl State {
    fn mask(&self, cfg: &Config) -> Option<(MaskAction, Family)> {
        if self.header {
            return None;
        }
        cfg.columns.get(self.field).and_then(|c| c.mask)
    }

    fn next_field(&mut self, cfg: &Config) -> Result<(), MaskError> {
        if self.field + 1 >= cfg.columns.len() {
            return Err(MaskError::CopyTooManyFields {
                row: self.row,
                expected: cfg.columns.len(),
            });
        }
        self.field += 1;
        Ok(())
    }

    fn end_row(&mut self, cfg: &Config) -> Result<(), MaskError> {
        if self.field + 1 != cfg.columns.len() {
            return Err(MaskError::CopyFieldCount {
                row: self.row,
                expected: cfg.columns.len(),
                found: self.field + 1,
            });
        }
        self.field = 0;
        self.row += 1;
        self.header = false;
        self.row_open = false;
        Ok(())
    }

    fn textual(&mut self, cfg: &Config, s: &mut Sink, key: &HashKey) -> Result<(), MaskError> {
        let mut i = 0;
        while let Some(&b) = s.p.get(i) {
            i = match self.mode {
                Mode::FieldStart => {
                    self.begin_field(cfg, s, i, key);
                    i
                }
                Mode::Pass { copy, lex } => match cfg.syntax {
                    Syntax::Csv(csv) => self.csv_pass(cfg, csv, s, i, copy, lex)?,
                    _ => self.text_pass(cfg, s, i, copy, lex)?,
                },
                Mode::Prefix { k, esc } => self.prefix(cfg, s, i, k, esc)?,
                Mode::TextValue(dec) => self.text_value(cfg, s, i, dec)?,
                Mode::CsvValue(lex) => match cfg.syntax {
                    Syntax::Csv(csv) => self.csv_value(cfg, csv, s, i, lex)?,
                    _ => return Err(MaskError::CopyMalformed("internal: not CSV format")),
                },
                Mode::Cr if b == b'\n' => {
                    // The LF ends the row in Pass mode.
                    self.mode = COPYING;
                    i
                }
                Mode::Cr => {
                    return Err(MaskError::CopyMalformed(
                        "a carriage return outside a value is not followed by a newline",
                    ));
                }
            };
        }
        Ok(())
    }

    fn begin_field(&mut self, cfg: &Config, s: &mut Sink, i: usize, key: &HashKey) {
        self.row_open = true;
        self.mode = match self.mask(cfg) {
            None => COPYING,
            Some((MaskAction::Null, _)) => {
                // NULL whatever the value is: known now.
                s.at(i).extend_from_slice(&cfg.null);
                DISCARDING
            }
            Some((action, family)) => {
                self.hasher = (action == MaskAction::Hash)
                    .then(|| ValueHasher::new(family, Format::Text, key));
                Mode::Prefix { k: 0, esc: false }
            }
        };
    }

    // PostgreSQL, COPY, "Text Format": "Backslash characters (\) can be used in the COPY
    // data to quote data characters that might otherwise be taken as row or column
    // delimiters. In particular, the following characters must be preceded by a backslash
    // if they appear as part of a column value: backslash itself, newline, carriage return,
    // and the current delimiter character." So a field ends at the first delimiter or line
    // end not preceded by an unpaired backslash; "COPY TO will terminate each row with a
    // Unix-style newline" (a CR LF is accepted too; a bare CR is an error).
    fn text_pass(
        &mut self,
        cfg: &Config,
        s: &mut Sink,
        start: usize,
        copy: bool,
        mut lex: Lex,
    ) -> Result<usize, MaskError> {
        let Syntax::Text { delim } = cfg.syntax else {
            return Err(MaskError::CopyMalformed("internal: not text format"));
        };
        let stops = &cfg.stops;
        let p = s.p;
        let mut i = start;
        let mut row_begin = None;
        let mode = loop {
            if lex == Lex::Backslash {
                if i >= p.len() {
                    break Mode::Pass { copy, lex };
                }
                i += 1;
                lex = Lex::Plain;
            }
            let Some(off) = p[i..].iter().position(|&b| stops[usize::from(b)]) else {
                i = p.len();
                break Mode::Pass { copy, lex };
            };
            let j = i + off;
            let b = p[j];
            if b == b'\\' {
                i = j + 1;
                lex = Lex::Backslash;
                continue;
            }
            if !copy {
                // The discarded field ends here; the terminator passes through.
                i = j;
                break COPYING;
            }
            i = j + 1;
            if let Some(mode) = self.terminator(cfg, b, delim, i, &mut row_begin)? {
                break mode;
            }
        };
        self.after_pass(s, start, i, copy, row_begin, mode);
        Ok(i)
    }

    /// A field of a copied stretch ended at `b` (delimiter, LF or CR): `Some` stops the
    /// stretch.
    fn terminator(
        &mut self,
        cfg: &Config,
        b: u8,
        delim: u8,
        i: usize,
        row_begin: &mut Option<usize>,
    ) -> Result<Option<Mode>, MaskError> {
        if b == delim {
            self.next_field(cfg)?;
        } else if b == b'\n' {
            self.end_row(cfg)?;
            *row_begin = Some(i);
        } else {
            return Ok(Some(Mode::Cr));
        }
        Ok(self.mask(cfg).map(|_| Mode::FieldStart))
    }

    fn after_pass(
        &mut self,
        s: &mut Sink,
        start: usize,
        i: usize,
        copy: bool,
        row_begin: Option<usize>,
        mode: Mode,
    ) {
        match row_begin {
            Some(b) => self.row_open = i > b,
            None => self.row_open |= i > start,
        }
        if !copy {
            s.skip(start, i);
        }
        self.mode = mode;
    }

    // PostgreSQL, COPY, "CSV Format": "If the value contains the delimiter character, the
    // QUOTE character, the NULL string, a carriage return, or line feed character, then the
    // whole value is prefixed and suffixed by the QUOTE character, and any occurrence within
    // the value of a QUOTE character or the ESCAPE character is preceded by the escape
    // character." Like PostgreSQL's reader, a quote anywhere in a field opens a quoted part,
    // and a line end inside quotes is data.
    fn csv_pass(
        &mut self,
        cfg: &Config,
        csv: Csv,
        s: &mut Sink,
        start: usize,
        copy: bool,
        mut lex: Lex,
    ) -> Result<usize, MaskError> {
        let Csv {
            delim,
            quote,
            escape,
        } = csv;
        let (stops, quoted) = (&cfg.stops, &cfg.quoted);
        let p = s.p;
        let mut i = start;
        let mut row_begin = None;
        let mode = loop {
            match lex {
                Lex::Quoted => {
                    let Some(off) = p[i..].iter().position(|&b| quoted[usize::from(b)]) else {
                        i = p.len();
                        break Mode::Pass { copy, lex };
                    };
                    i += off + 1;
                    lex = if p[i - 1] == escape {
                        Lex::QuotedEscape
                    } else {
                        Lex::Plain
                    };
                }
                Lex::QuotedEscape => {
                    let Some(&b) = p.get(i) else {
                        break Mode::Pass { copy, lex };
                    };
                    lex = csv_after_escape(b, quote, escape);
                    if b == quote || b == escape {
                        i += 1;
                    }
                }
                Lex::Plain | Lex::Backslash => {
                    let Some(off) = p[i..].iter().position(|&b| stops[usize::from(b)]) else {
                        i = p.len();
                        break Mode::Pass { copy, lex };
                    };
                    let j = i + off;
                    let b = p[j];
                    if b == quote {
                        i = j + 1;
                        lex = Lex::Quoted;
                        continue;
                    }
                    if !copy {
                        i = j;
                        break COPYING;
                    }
                    i = j + 1;
                    if let Some(mode) = self.terminator(cfg, b, delim, i, &mut row_begin)? {
                        break mode;
                    }
                }
            }
        };
        self.after_pass(s, start, i, copy, row_begin, mode);
        Ok(i)
    }

    /// A masked field that may still be NULL. PostgreSQL, "Text Format": "COPY FROM
    /// matches the input against the null string before removing backslashes"; "CSV
    /// Format": "A NULL is output as the NULL string and is not quoted, while a non-NULL
    /// value matching the NULL string is quoted."
    fn prefix(
        &mut self,
        cfg: &Config,
        s: &mut Sink,
        start: usize,
        mut k: usize,
        mut esc: bool,
    ) -> Result<usize, MaskError> {
        let (delim, quote) = match cfg.syntax {
            Syntax::Text { delim, .. } => (delim, None),
            Syntax::Csv(Csv { delim, quote, .. }) => (delim, Some(quote)),
            Syntax::Binary => return Err(MaskError::CopyMalformed("internal: binary format")),
        };
        let mut i = start;
        while let Some(&b) = s.p.get(i) {
            if !esc && (b == delim || b == b'\n' || b == b'\r') {
                s.skip(start, i);
                let null = k == cfg.null.len();
                self.end_masked(cfg, s, i, null, k, TextEsc::Plain)?;
                return Ok(i);
            }
            if Some(b) != quote && cfg.null.get(k) == Some(&b) {
                k += 1;
                esc = quote.is_none() && !esc && b == b'\\';
                i += 1;
                continue;
            }
            // Not NULL: replay the matched prefix as the value's first bytes.
            s.skip(start, i);
            self.mode = match self.hasher.as_mut() {
                None => {
                    write_field(cfg, s.at(i), REDACTED);
                    let lex = if esc { Lex::Backslash } else { Lex::Plain };
                    Mode::Pass { copy: false, lex }
                }
                Some(h) if quote.is_some() => {
                    h.update(&cfg.null[..k])?;
                    Mode::CsvValue(Lex::Plain)
                }
                Some(h) => {
                    let mut dec = TextEsc::Plain;
                    unescape(&mut dec, &cfg.null[..k], h)?;
                    Mode::TextValue(dec)
                }
            };
            return Ok(i);
        }
        s.skip(start, i);
        self.mode = Mode::Prefix { k, esc };
        Ok(i)
    }

    fn text_value(
        &mut self,
        cfg: &Config,
        s: &mut Sink,
        start: usize,
        mut dec: TextEsc,
    ) -> Result<usize, MaskError> {
        let stops = &cfg.stops;
        let p = s.p;
        // The first delimiter or line end not after an unpaired backslash.
        let mut i = start;
        if dec == TextEsc::Backslash {
            i += 1;
        }
        let end = loop {
            match p
                .get(i..)
                .and_then(|r| r.iter().position(|&b| stops[usize::from(b)]))
            {
                Some(off) if p[i + off] == b'\\' => i += off + 2,
                Some(off) => break Some(i + off),
                None => break None,
            }
        };
        let h = self.hasher.as_mut().ok_or(NO_HASHER)?;
        unescape(&mut dec, &p[start..end.unwrap_or(p.len())], h)?;
        match end {
            Some(j) => {
                s.skip(start, j);
                self.end_masked(cfg, s, j, false, 0, dec)?;
                Ok(j)
            }
            None => {
                s.skip(start, p.len());
                self.mode = Mode::TextValue(dec);
                Ok(p.len())
            }
        }
    }

    fn csv_value(
        &mut self,
        cfg: &Config,
        Csv { quote, escape, .. }: Csv,
        s: &mut Sink,
        start: usize,
        mut lex: Lex,
    ) -> Result<usize, MaskError> {
        let (stops, quoted) = (&cfg.stops, &cfg.quoted);
        let p = s.p;
        let h = self.hasher.as_mut().ok_or(NO_HASHER)?;
        let mut i = start;
        while i < p.len() {
            let table = if lex == Lex::Quoted { quoted } else { stops };
            match lex {
                Lex::QuotedEscape => {
                    let b = p[i];
                    lex = csv_after_escape(b, quote, escape);
                    if b == quote || b == escape {
                        h.update(&[b])?;
                        i += 1;
                    } else if lex == Lex::Quoted {
                        // A lone escape character (escape ≠ quote) is data.
                        h.update(&[escape])?;
                    }
                }
                _ => {
                    let rest = &p[i..];
                    let Some(off) = rest.iter().position(|&b| table[usize::from(b)]) else {
                        h.update(rest)?;
                        i = p.len();
                        break;
                    };
                    h.update(&rest[..off])?;
                    let j = i + off;
                    i = j + 1;
                    lex = match (lex, p[j]) {
                        (Lex::Quoted, b) if b == escape => Lex::QuotedEscape,
                        (Lex::Quoted, _) => Lex::Plain,
                        (_, b) if b == quote => Lex::Quoted,
                        _ => {
                            s.skip(start, j);
                            self.end_masked(cfg, s, j, false, 0, TextEsc::Plain)?;
                            return Ok(j);
                        }
                    };
                }
            }
        }
        s.skip(start, i);
        self.mode = Mode::CsvValue(lex);
        Ok(i)
    }

    /// A masked text or CSV field ended at `at`: writes its replacement. `k` bytes of the
    /// null string are still to be fed when the field ended while matching it.
    fn end_masked(
        &mut self,
        cfg: &Config,
        s: &mut Sink,
        at: usize,
        null: bool,
        k: usize,
        dec: TextEsc,
    ) -> Result<(), MaskError> {
        self.mode = COPYING;
        let hasher = self.hasher.take();
        if null {
            s.at(at).extend_from_slice(&cfg.null);
            return Ok(());
        }
        let Some(mut h) = hasher else {
            write_field(cfg, s.at(at), REDACTED);
            return Ok(());
        };
        let mut dec = dec;
        match cfg.syntax {
            Syntax::Csv(_) => h.update(&cfg.null[..k])?,
            _ => unescape(&mut dec, &cfg.null[..k], &mut h)?,
        }
        // The field's end also ends a pending `\ooo` or `\xhh`.
        match dec {
            TextEsc::Plain | TextEsc::Backslash => {}
            // Like PostgreSQL, an octal value above 0o377 keeps its low byte.
            TextEsc::Octal { value, .. } => h.update(&[(value & 0xff) as u8])?,
            TextEsc::Hex { digits: 0, .. } => h.update(b"x")?,
            TextEsc::Hex { value, .. } => h.update(&[value])?,
        }
        self.scratch.clear();
        h.finish(&mut self.scratch)?;
        write_field(cfg, s.at(at), &self.scratch);
        Ok(())
    }

    // PostgreSQL, COPY, "Binary Format": "The file header consists of 15 bytes of fixed
    // fields, followed by a variable-length header extension area": the signature
    // "PGCOPY\n\377\r\n\0", a 32-bit flags field ("Bits 16-31 are reserved to denote critical
    // file format issues; a reader should abort if it finds an unexpected bit set in this
    // range. Bits 0-15 … a reader should simply ignore") and the "Header extension area
    // length … A reader should silently skip over any header extension data". "Each tuple
    // begins with a 16-bit integer count of the number of fields in the tuple. … Then,
    // repeated for each field in the tuple, there is a 32-bit length word followed by that
    // many bytes of field data. … As a special case, -1 indicates a NULL field value." "The
    // file trailer consists of a 16-bit integer word containing -1." "A reader should report
    // an error if a field-count word is neither -1 nor the expected number of columns."
    fn binary(&mut self, cfg: &Config, s: &mut Sink, key: &HashKey) -> Result<(), MaskError> {
        let p = s.p;
        let mut i = 0;
        while i < p.len() {
            let masked = self.mask(cfg);
            match &mut self.bin {
                Bin::Signature(n) => {
                    let take = (SIGNATURE.len() - *n).min(p.len() - i);
                    if p[i..i + take] != SIGNATURE[*n..*n + take] {
                        return Err(MaskError::CopyMalformed("not a binary COPY signature"));
                    }
                    *n += take;
                    i += take;
                    if *n == SIGNATURE.len() {
                        self.bin = Bin::Flags(Acc::new());
                    }
                }
                Bin::Flags(acc) => {
                    let (j, word) = acc.fill(p, i);
                    i = j;
                    if let Some(word) = word {
                        // Bit 16 would add an OID field to every tuple.
                        if u32::from_be_bytes(word) & 0xffff_0000 != 0 {
                            return Err(MaskError::CopyMalformed("critical binary COPY flags"));
                        }
                        self.bin = Bin::ExtensionLength(Acc::new());
                    }
                }
                Bin::ExtensionLength(acc) => {
                    let (j, word) = acc.fill(p, i);
                    i = j;
                    if let Some(word) = word {
                        let len = u32::try_from(i32::from_be_bytes(word)).map_err(|_| {
                            MaskError::CopyMalformed("negative header extension length")
                        })?;
                        self.bin = Bin::Extension(len);
                    }
                }
                Bin::Extension(left) | Bin::Copy(left) | Bin::Skip(left) | Bin::Hash(left)
                    if *left > 0 =>
                {
                    let take = (*left as usize).min(p.len() - i);
                    // take ≤ left, a u32.
                    *left -= take as u32;
                    let piece = &p[i..i + take];
                    match self.bin {
                        Bin::Skip(_) => s.skip(i, i + take),
                        Bin::Hash(_) => {
                            s.skip(i, i + take);
                            self.hasher.as_mut().ok_or(NO_HASHER)?.update(piece)?;
                        }
                        _ => {}
                    }
                    i += take;
                }
                Bin::Extension(_) => self.bin = Bin::FieldCount(Acc::new()),
                Bin::Copy(_) | Bin::Skip(_) | Bin::Hash(_) => self.binary_tail(cfg, s, i)?,
                Bin::FieldCount(acc) => {
                    let (j, word) = acc.fill(p, i);
                    i = j;
                    if let Some(word) = word {
                        let count = i16::from_be_bytes(word);
                        self.row += u64::from(count != -1);
                        if count == -1 {
                            self.bin = Bin::Done;
                        } else if usize::try_from(count).ok() == Some(cfg.columns.len()) {
                            self.field = 0;
                            self.bin = Bin::FieldLength(Acc::new());
                        } else {
                            let Ok(found) = usize::try_from(count) else {
                                return Err(MaskError::CopyMalformed("negative field count"));
                            };
                            return Err(MaskError::CopyFieldCount {
                                row: self.row,
                                expected: cfg.columns.len(),
                                found,
                            });
                        }
                    }
                }
                Bin::FieldLength(acc) => {
                    let (j, word) = acc.fill(p, i);
                    if masked.is_some() {
                        // The length word changes: it is written once complete.
                        s.skip(i, j);
                    }
                    i = j;
                    if let Some(word) = word {
                        let len = i32::from_be_bytes(word);
                        self.binary_field(cfg, s, i, len, masked, key)?;
                    }
                }
                Bin::Done => {
                    return Err(MaskError::CopyMalformed(
                        "data after the binary COPY trailer",
                    ));
                }
            }
        }
        // A hashed value that just ended, or a zero-length field, completes without a byte.
        if let Bin::Hash(0) | Bin::Copy(0) | Bin::Skip(0) = self.bin {
            return self.binary_tail(cfg, s, p.len());
        }
        Ok(())
    }

    fn binary_tail(&mut self, cfg: &Config, s: &mut Sink, at: usize) -> Result<(), MaskError> {
        if let Bin::Hash(0) = self.bin {
            self.hasher.take().ok_or(NO_HASHER)?.finish(s.at(at))?;
        }
        self.next_binary_field(cfg);
        Ok(())
    }

    fn binary_field(
        &mut self,
        cfg: &Config,
        s: &mut Sink,
        at: usize,
        len: i32,
        masked: Option<(MaskAction, Family)>,
        key: &HashKey,
    ) -> Result<(), MaskError> {
        let Ok(bytes) = u32::try_from(len) else {
            if len != -1 {
                return Err(MaskError::CopyMalformed("negative field length"));
            }
            if masked.is_some() {
                s.at(at).extend_from_slice(&len.to_be_bytes());
            }
            self.next_binary_field(cfg);
            return Ok(());
        };
        self.bin = match masked {
            None => Bin::Copy(bytes),
            Some((MaskAction::Null, _)) => {
                s.at(at).extend_from_slice(&(-1i32).to_be_bytes());
                Bin::Skip(bytes)
            }
            Some((MaskAction::Redact, _)) => {
                let out = s.at(at);
                // REDACTED is 3 bytes.
                out.extend_from_slice(&(REDACTED.len() as i32).to_be_bytes());
                out.extend_from_slice(REDACTED);
                Bin::Skip(bytes)
            }
            Some((MaskAction::Hash, family)) => {
                let n = hash_len(family, Format::Binary).unwrap_or(0);
                let fixed = matches!(
                    family,
                    Family::Int2 | Family::Int4 | Family::Int8 | Family::Uuid
                );
                if fixed && bytes as usize != n {
                    // Ints and uuids hash to their own width.
                    return Err(MaskError::BadLength {
                        family,
                        expected: n,
                    });
                }
                // n ≤ 32.
                s.at(at).extend_from_slice(&(n as i32).to_be_bytes());
                self.hasher = Some(ValueHasher::new(family, Format::Binary, key));
                Bin::Hash(bytes)
            }
        };
        if bytes == 0 {
            self.binary_tail(cfg, s, at)?;
        }
        Ok(())
    }

    fn next_binary_field(&mut self, cfg: &Config) {
        self.field += 1;
        self.bin = if self.field == cfg.columns.len() {
            Bin::FieldCount(Acc::new())
        } else {
            Bin::FieldLength(Acc::new())
        };
    }
}

/// The state after the escape character inside quotes, given the next byte `b`: an escaped
/// quote or escape stays inside; else, if escape = quote, it was the closing quote.
fn csv_after_escape(b: u8, quote: u8, escape: u8) -> Lex {
    if b == quote || b == escape || escape != quote {
        Lex::Quoted
    } else {
        Lex::Plain
    }
}

// PostgreSQL, COPY, "Text Format": "\b Backspace (ASCII 8), \f Form feed (ASCII 12), \n
// Newline (ASCII 10), \r Carriage return (ASCII 13), \t Tab (ASCII 9), \v Vertical tab
// (ASCII 11), \digits Backslash followed by one to three octal digits specifies the byte
// with that numeric code, \xdigits Backslash x followed by one or two hex digits specifies
// the byte with that numeric code". "Presently, COPY TO will never emit an octal or
// hex-digits backslash sequence" (accepted anyway). "Any other backslashed character that
// is not mentioned in the above table will be taken to represent itself."
fn unescape(dec: &mut TextEsc, bytes: &[u8], h: &mut ValueHasher) -> Result<(), MaskError> {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match *dec {
            TextEsc::Plain => {
                let rest = &bytes[i..];
                let run = rest.iter().position(|&c| c == b'\\').unwrap_or(rest.len());
                h.update(&rest[..run])?;
                i += run;
                if run < rest.len() {
                    *dec = TextEsc::Backslash;
                    i += 1;
                }
            }
            TextEsc::Backslash => {
                i += 1;
                *dec = TextEsc::Plain;
                let c = match b {
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 11,
                    b'0'..=b'7' => {
                        let value = u16::from(b - b'0');
                        *dec = TextEsc::Octal { digits: 1, value };
                        continue;
                    }
                    b'x' => {
                        *dec = TextEsc::Hex {
                            digits: 0,
                            value: 0,
                        };
                        continue;
                    }
                    _ => b,
                };
                h.update(&[c])?;
            }
            TextEsc::Octal { digits, value } => match b {
                b'0'..=b'7' => {
                    i += 1;
                    let value = (value << 3) | u16::from(b - b'0');
                    *dec = TextEsc::Octal {
                        digits: digits + 1,
                        value,
                    };
                    if digits == 2 {
                        *dec = TextEsc::Plain;
                        h.update(&[(value & 0xff) as u8])?;
                    }
                }
                _ => {
                    *dec = TextEsc::Plain;
                    h.update(&[(value & 0xff) as u8])?;
                }
            },
            TextEsc::Hex { digits, value } => match hex_value(b) {
                Some(d) => {
                    i += 1;
                    let value = (value << 4) | d;
                    *dec = TextEsc::Hex {
                        digits: digits + 1,
                        value,
                    };
                    if digits == 1 {
                        *dec = TextEsc::Plain;
                        h.update(&[value])?;
                    }
                }
                None => {
                    *dec = TextEsc::Plain;
                    h.update(&[if digits == 0 { b'x' } else { value }])?;
                }
            },
        }
    }
    Ok(())
}

/// Writes a replacement value as a field of the data's format.
fn write_field(cfg: &Config, out: &mut Vec<u8>, value: &[u8]) {
    match cfg.syntax {
        Syntax::Text { delim, .. } => {
            let at = out.len();
            escape_text(out, value, delim, false);
            if out[at..] == cfg.null[..] {
                // It would read back as NULL: spell the first byte in octal, which no
                // null string equal to the plain spelling can match.
                out.truncate(at);
                escape_text(out, value, delim, true);
            }
        }
        Syntax::Csv(Csv {
            delim,
            quote,
            escape,
        }) => {
            let special =
                |b: u8| b == delim || b == quote || b == escape || b == b'\n' || b == b'\r';
            if !value.is_empty() && value != cfg.null && !value.iter().any(|&b| special(b)) {
                out.extend_from_slice(value);
                return;
            }
            out.push(quote);
            for &b in value {
                if b == quote || b == escape {
                    out.push(escape);
                }
                out.push(b);
            }
            out.push(quote);
        }
        Syntax::Binary => out.extend_from_slice(value),
    }
}

/// Escapes as COPY TO does (CopyAttributeOutText).
fn escape_text(out: &mut Vec<u8>, value: &[u8], delim: u8, octal_first: bool) {
    for (n, &b) in value.iter().enumerate() {
        if n == 0 && octal_first {
            out.extend_from_slice(&[
                b'\\',
                b'0' + (b >> 6),
                b'0' + ((b >> 3) & 7),
                b'0' + (b & 7),
            ]);
            continue;
        }
        let e = match b {
            8 => b'b',
            12 => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            11 => b'v',
            b'\\' => b'\\',
            _ if b == delim => b,
            _ => {
                out.push(b);
                continue;
            }
        };
        out.extend_from_slice(&[b'\\', e]);
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
