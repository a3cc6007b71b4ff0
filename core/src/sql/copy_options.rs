//! The options of `COPY … TO STDOUT`: the format and its delimiters, which the data
//! plane needs to find the fields of COPY data it masks. The classifier decides whether a
//! COPY may run; this reads how its output will look.
//!
//! What this module must never do: guess. An option it does not know, a value it cannot
//! read (an `E'…'` string, a multi-byte delimiter), or an ENCODING other than UTF8 is an
//! error, and the data plane refuses to mask (and so to run) that COPY.

use super::keywords::Kw;
use super::lexer::{Kind, Lexer, StrKind, Token};

/// `FORMAT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// How a `COPY … TO STDOUT` writes its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: u8,
    pub null: String,
    pub quote: u8,
    pub escape: u8,
    pub header: bool,
}

/// What a COPY copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// `COPY (query) TO …`
    Query,
    /// `COPY table [(columns)] TO …`
    Table,
}

/// Reads a `COPY … TO STDOUT` statement's source and options (`sql` is the statement).
pub fn copy_to_options(sql: &str) -> Result<(CopySource, CopyOptions), &'static str> {
    let mut lx = Lexer::new(sql);
    let mut toks: Vec<Token> = Vec::new();
    loop {
        let t = lx.next_token().map_err(|e| e.0)?;
        if matches!(t.kind, Kind::Eof | Kind::Semicolon) {
            break;
        }
        if toks.len() >= 4096 {
            return Err("COPY statement too long to read its options");
        }
        toks.push(t);
    }
    let mut i = 0;
    let at = |i: usize| toks.get(i).copied();
    if !at(i).is_some_and(|t| t.is(Kw::Copy)) {
        return Err("not a COPY statement");
    }
    i += 1;
    let mut format = CopyFormat::Text;
    if at(i).is_some_and(|t| t.is(Kw::Binary)) {
        format = CopyFormat::Binary;
        i += 1;
    }
    // The source, up to TO.
    let source = if at(i).is_some_and(|t| t.kind == Kind::LParen) {
        CopySource::Query
    } else {
        CopySource::Table
    };
    let mut depth = 0i32;
    loop {
        let t = at(i).ok_or("COPY without TO")?;
        i += 1;
        match t.kind {
            Kind::LParen => depth += 1,
            Kind::RParen => depth -= 1,
            _ if depth == 0 && t.is(Kw::To) => break,
            _ => {}
        }
    }
    if !at(i).is_some_and(|t| t.is(Kw::Stdout)) {
        return Err("COPY TO a file or program");
    }
    i += 1;
    let mut delimiter = None;
    let mut null = None;
    let mut quote = None;
    let mut escape = None;
    let mut header = false;
    let string = |t: Option<Token>| -> Result<String, &'static str> {
        let t = t.ok_or("a COPY option without its value")?;
        if t.kind != Kind::Str(StrKind::Standard) {
            return Err("a COPY option value that is not a plain '…' string");
        }
        let s = t.text(sql);
        let inner = s
            .get(1..s.len().saturating_sub(1))
            .ok_or("a malformed string")?;
        Ok(inner.replace("''", "'"))
    };
    let byte = |s: String| -> Result<u8, &'static str> {
        match s.as_bytes() {
            [b] if b.is_ascii() => Ok(*b),
            _ => Err("a COPY delimiter, quote or escape that is not one ASCII character"),
        }
    };
    if at(i).is_some_and(|t| t.is(Kw::With)) {
        i += 1;
    }
    if at(i).is_some_and(|t| t.kind == Kind::LParen) {
        // `( option [value] [, …] )`
        i += 1;
        loop {
            let name = at(i).ok_or("unterminated COPY options")?;
            i += 1;
            let word = name.text(sql).to_ascii_lowercase();
            let value_end =
                |t: Option<Token>| t.is_none_or(|t| matches!(t.kind, Kind::Comma | Kind::RParen));
            match word.as_str() {
                "format" => {
                    let v = at(i).ok_or("FORMAT without a value")?;
                    i += 1;
                    format = match v.text(sql).to_ascii_lowercase().trim_matches('\'') {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => CopyFormat::Binary,
                        _ => return Err("an unknown COPY FORMAT"),
                    };
                }
                "delimiter" => {
                    delimiter = Some(byte(string(at(i))?)?);
                    i += 1;
                }
                "null" => {
                    null = Some(string(at(i))?);
                    i += 1;
                }
                "quote" => {
                    quote = Some(byte(string(at(i))?)?);
                    i += 1;
                }
                "escape" => {
                    escape = Some(byte(string(at(i))?)?);
                    i += 1;
                }
                "header" => {
                    header = true;
                    if !value_end(at(i)) {
                        let v = at(i).map(|t| t.text(sql).to_ascii_lowercase());
                        i += 1;
                        header = match v.as_deref().map(|v| v.trim_matches('\'')) {
                            Some("true" | "on" | "1") => true,
                            Some("false" | "off" | "0") => false,
                            _ => return Err("a COPY HEADER value pgate does not know"),
                        };
                    }
                }
                "encoding" => {
                    let e = string(at(i))?;
                    i += 1;
                    if !matches!(e.to_ascii_lowercase().as_str(), "utf8" | "utf-8") {
                        return Err("a COPY ENCODING other than UTF8");
                    }
                }
                "force_quote" => {
                    // Quotes non-NULL values: the fields are read the same.
                    if at(i).is_some_and(|t| t.kind == Kind::LParen) {
                        while at(i).is_some_and(|t| t.kind != Kind::RParen) {
                            i += 1;
                        }
                        i += 1;
                    } else {
                        i += 1;
                    }
                }
                _ => return Err("a COPY option pgate does not know"),
            }
            match at(i) {
                Some(t) if t.kind == Kind::Comma => i += 1,
                Some(t) if t.kind == Kind::RParen => {
                    i += 1;
                    break;
                }
                _ => return Err("COPY options not understood"),
            }
        }
    } else {
        // The old syntax: `BINARY | CSV | HEADER | DELIMITER [AS] 'c' | NULL [AS] 's' |
        // QUOTE [AS] 'c' | ESCAPE [AS] 'c' | FORCE QUOTE …`.
        while let Some(t) = at(i) {
            i += 1;
            let word = t.text(sql).to_ascii_lowercase();
            let value = |i: &mut usize| -> Result<String, &'static str> {
                if at(*i).is_some_and(|t| t.is(Kw::As)) {
                    *i += 1;
                }
                let v = string(at(*i));
                *i += 1;
                v
            };
            match word.as_str() {
                "binary" => format = CopyFormat::Binary,
                "csv" => format = CopyFormat::Csv,
                "header" => header = true,
                "delimiter" => delimiter = Some(byte(value(&mut i)?)?),
                "null" => null = Some(value(&mut i)?),
                "quote" => quote = Some(byte(value(&mut i)?)?),
                "escape" => escape = Some(byte(value(&mut i)?)?),
                "force" => {
                    // FORCE QUOTE {* | col [, …]}: quotes non-NULL values only.
                    if !at(i).is_some_and(|t| t.text(sql).eq_ignore_ascii_case("quote")) {
                        return Err("a COPY FORCE option pgate does not know");
                    }
                    i += 1;
                    if at(i).is_some_and(|t| t.is_op(sql, "*")) {
                        i += 1;
                    } else {
                        loop {
                            if !at(i).is_some_and(|t| t.is_name()) {
                                return Err("COPY FORCE QUOTE not understood");
                            }
                            i += 1;
                            if at(i).is_some_and(|t| t.kind == Kind::Comma) {
                                i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                }
                _ => return Err("a COPY option pgate does not know"),
            }
        }
    }
    if i < toks.len() {
        return Err("COPY options not understood");
    }
    let csv = format == CopyFormat::Csv;
    let quote = quote.unwrap_or(b'"');
    Ok((
        source,
        CopyOptions {
            format,
            delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            quote,
            escape: escape.unwrap_or(quote),
            header,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(sql: &str) -> CopyOptions {
        copy_to_options(sql).map(|(_, o)| o).unwrap()
    }

    #[test]
    fn defaults_and_formats() {
        let o = opts("COPY customers TO STDOUT");
        assert_eq!(
            (o.format, o.delimiter, o.null.as_str()),
            (CopyFormat::Text, b'\t', "\\N")
        );
        let o = opts("copy public.customers (id, email) to stdout with (format csv, header)");
        assert_eq!(o.format, CopyFormat::Csv);
        assert_eq!(
            (o.delimiter, o.null.as_str(), o.quote, o.escape, o.header),
            (b',', "", b'"', b'"', true)
        );
        let o = opts("COPY t TO STDOUT (FORMAT binary)");
        assert_eq!(o.format, CopyFormat::Binary);
        let o = opts("COPY BINARY t TO STDOUT");
        assert_eq!(o.format, CopyFormat::Binary);
        let o = opts(
            "COPY t TO STDOUT WITH CSV HEADER DELIMITER AS ';' NULL 'n/a' QUOTE '''' ESCAPE '\\'",
        );
        assert_eq!(
            (o.delimiter, o.null.as_str(), o.quote, o.escape, o.header),
            (b';', "n/a", b'\'', b'\\', true)
        );
        let o = opts("COPY t TO STDOUT CSV FORCE QUOTE id, name DELIMITER ';'");
        assert_eq!((o.format, o.delimiter), (CopyFormat::Csv, b';'));
        let o = opts("COPY t TO STDOUT CSV FORCE QUOTE * HEADER");
        assert!(o.header);
        let o = opts(
            "COPY t TO STDOUT (FORMAT 'csv', HEADER false, FORCE_QUOTE (a, b), ENCODING 'UTF8');",
        );
        assert!(!o.header);
        assert_eq!(
            copy_to_options("COPY (SELECT 1) TO STDOUT").map(|(s, _)| s),
            Ok(CopySource::Query)
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for sql in [
            "COPY t TO STDOUT (DELIMITER E'\\t')",
            "COPY t TO STDOUT (ENCODING 'LATIN1')",
            "COPY t TO STDOUT (DELIMITER 'ab')",
            "COPY t TO STDOUT (FORMAT xml)",
            "COPY t TO STDOUT (HEADER match)",
            "COPY t TO STDOUT (FREEZE)",
            "COPY t TO '/tmp/x'",
            "COPY t TO STDOUT (FORMAT csv) junk",
        ] {
            assert!(copy_to_options(sql).is_err(), "{sql}");
        }
    }
}
