//! Tests of `copy.rs`: known answers, every split of the input, and a property test against
//! an independent model (values encoded and masked by the test, not by the rewriter).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::super::value::mask_value;
use super::*;

const KEY: [u8; 32] = [0x5a; 32];

fn key() -> HashKey {
    HashKey::new(KEY)
}

fn mac_hex16(domain: &str, canonical: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&KEY).unwrap();
    m.update(format!("pgate-mask-v1\0{domain}\0").as_bytes());
    m.update(canonical);
    let tag = m.finalize().into_bytes();
    tag[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The masked value in text format, as `value.rs` computes it (itself checked against hmac).
fn masked(action: MaskAction, family: Family, format: Format, v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    mask_value(action, family, format, &key(), Some(v), &mut out).unwrap();
    out
}

const NONE: CopyColumn = CopyColumn { mask: None };

fn col(action: MaskAction, family: Family) -> CopyColumn {
    CopyColumn {
        mask: Some((action, family)),
    }
}

fn plan(format: CopyFormat, header: bool, columns: &[CopyColumn]) -> CopyPlan {
    CopyPlan {
        format,
        header,
        columns: columns.to_vec(),
    }
}

fn run(plan: &CopyPlan, chunks: &[&[u8]]) -> Result<Vec<u8>, MaskError> {
    let mut r = CopyRewriter::new(plan.clone())?;
    let mut out = Vec::new();
    for c in chunks {
        r.rewrite(c, &key(), &mut out)?;
    }
    r.finish()?;
    Ok(out)
}

/// Rewrites `data` whole, split in two at every offset and byte by byte; all must agree.
fn rewrite_all_ways(plan: &CopyPlan, data: &[u8]) -> Result<Vec<u8>, MaskError> {
    let whole = run(plan, &[data]);
    for cut in 0..=data.len() {
        assert_eq!(
            run(plan, &[&data[..cut], &data[cut..]]),
            whole,
            "cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(plan, &bytes), whole, "byte by byte");
    // Empty payloads change nothing.
    assert_eq!(run(plan, &[b"", data, b""]), whole, "with empty payloads");
    whole
}

fn ok(plan: &CopyPlan, data: &[u8]) -> Vec<u8> {
    rewrite_all_ways(plan, data).unwrap()
}

fn s(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

#[test]
fn unmasked_columns_are_bit_identical() {
    let data = b"1\tZo\xc3\xab\\t\\\\\\n\t\\N\n2\t\xe6\x97\xa5\\r\\x41\t\\011\n";
    let p = plan(CopyFormat::text(), false, &[NONE, NONE, NONE]);
    assert_eq!(ok(&p, data), data);
    let csv = b"1,\"a,\"\"b\"\"\nc\",\n2,,\"\"\r\n";
    let p = plan(CopyFormat::csv(), false, &[NONE, NONE, NONE]);
    assert_eq!(ok(&p, csv), csv);
}

#[test]
fn text_known_answers_with_multibyte_and_escapes() {
    use MaskAction::*;
    let p = plan(
        CopyFormat::text(),
        false,
        &[
            NONE,
            col(Hash, Family::Text),
            col(Redact, Family::Text),
            col(Null, Family::Text),
        ],
    );
    let data = "1\tZoë\t日本\tsecret\n2\ta\\tb\\\\c\\nd\tx\t\\N\n".as_bytes();
    let want = format!(
        "1\t{}\t***\t\\N\n2\t{}\t***\t\\N\n",
        mac_hex16("text", "Zoë".as_bytes()),
        mac_hex16("text", b"a\tb\\c\nd"),
    );
    assert_eq!(s(&ok(&p, data)), want);
}

#[test]
fn text_nulls_and_the_null_string() {
    let h = col(MaskAction::Hash, Family::Text);
    let r = col(MaskAction::Redact, Family::Text);
    let p = plan(CopyFormat::text(), false, &[h, r]);
    // NULL stays NULL; the data value \N is written \\N and is not NULL.
    let got = ok(&p, b"\\N\t\\N\n\\\\N\t\\\\N\n\t\n\\\t\t\\Nx\n");
    let want = format!(
        "\\N\t\\N\n{}\t***\n{}\t***\n{}\t***\n",
        mac_hex16("text", b"\\N"),
        mac_hex16("text", b""),
        mac_hex16("text", b"\t"),
    );
    assert_eq!(s(&got), want);
}

#[test]
fn custom_delimiter_and_null_string() {
    let fmt = CopyFormat::Text {
        delimiter: b'|',
        null: b"nil".to_vec(),
    };
    let h = col(MaskAction::Hash, Family::Text);
    let p = plan(fmt, false, &[NONE, h, h, h]);
    let got = ok(&p, b"a\\|b|nil|ni|nilx\n|x\\|y|n\\il|\n");
    let want = format!(
        "a\\|b|nil|{}|{}\n|{}|{}|{}\n",
        mac_hex16("text", b"ni"),
        mac_hex16("text", b"nilx"),
        mac_hex16("text", b"x|y"),
        mac_hex16("text", b"nil"),
        mac_hex16("text", b""),
    );
    assert_eq!(s(&got), want);
}

#[test]
fn replacements_are_escaped_and_never_read_back_as_null() {
    // A hashed bytea is `\x…`, written `\\x…`; a delimiter in a replacement is escaped.
    let p = plan(
        CopyFormat::text(),
        false,
        &[col(MaskAction::Hash, Family::Bytea)],
    );
    let got = ok(&p, b"\\\\x0a0B\n\\\\000\\\\\\\\\n");
    let want = format!(
        "\\\\x{}\n\\\\x{}\n",
        mac_hex16("bytea", b"\x0a\x0b"),
        mac_hex16("bytea", b"\0\\")
    );
    assert_eq!(s(&got), want);
    let star = CopyFormat::Text {
        delimiter: b'*',
        null: b"N".to_vec(),
    };
    let p = plan(star, false, &[col(MaskAction::Redact, Family::Text), NONE]);
    assert_eq!(ok(&p, b"x*y\n"), b"\\*\\*\\**y\n");
    // Null string '***': the redaction is spelled \052** so it does not read as NULL.
    let nulls = CopyFormat::Text {
        delimiter: b'\t',
        null: b"***".to_vec(),
    };
    let p = plan(nulls, false, &[col(MaskAction::Redact, Family::Text)]);
    assert_eq!(ok(&p, b"x\n***\n"), b"\\052**\n***\n");
}

#[test]
fn text_octal_and_hex_escapes_are_decoded_for_the_hash() {
    let p = plan(
        CopyFormat::text(),
        false,
        &[col(MaskAction::Hash, Family::Text), NONE],
    );
    let got = ok(&p, b"\\101\\x42\\x4\\7\\0101\\xg\\q\\777\tz\n");
    let want = format!("{}\tz\n", mac_hex16("text", b"AB\x04\x07\x081xgq\xff"));
    assert_eq!(s(&got), want);
}

#[test]
fn header_rows_pass_through() {
    let h = col(MaskAction::Hash, Family::Int4);
    let p = plan(CopyFormat::text(), true, &[NONE, h]);
    let got = ok(&p, b"id\tsecret\\tcol\n1\t42\n");
    assert!(got.starts_with(b"id\tsecret\\tcol\n"));
    assert_eq!(
        s(&got[15..]),
        format!(
            "1\t{}\n",
            s(&masked(MaskAction::Hash, Family::Int4, Format::Text, b"42"))
        )
    );
    let p = plan(CopyFormat::csv(), true, &[NONE, h]);
    let got = ok(&p, b"id,\"se,\ncret\"\n1,42\n");
    assert!(got.starts_with(b"id,\"se,\ncret\"\n1,"));
    // A header with the wrong number of names is as wrong as a row.
    assert!(run(&p, &[b"id\n1,2\n"]).is_err());
}

#[test]
fn csv_quoted_fields_with_quotes_delimiters_and_newlines() {
    use MaskAction::*;
    let p = plan(
        CopyFormat::csv(),
        false,
        &[
            col(Hash, Family::Text),
            NONE,
            col(Redact, Family::Text),
            col(Hash, Family::Text),
        ],
    );
    let data = "\"a,\"\"b\"\"\nc\",\"x\ny\",\"\",\"Zoë\"\r\n,\"\",,日本\n".as_bytes();
    let want = format!(
        "{},\"x\ny\",***,{}\r\n,\"\",,{}\n",
        mac_hex16("text", b"a,\"b\"\nc"),
        mac_hex16("text", "Zoë".as_bytes()),
        mac_hex16("text", "日本".as_bytes()),
    );
    assert_eq!(s(&ok(&p, data)), want);
    // An empty quoted value is the empty string, not NULL; a quote mid-field opens quotes.
    let p = plan(
        CopyFormat::csv(),
        false,
        &[col(Hash, Family::Text), col(Hash, Family::Text)],
    );
    let want = format!(
        "{},{}\n",
        mac_hex16("text", b""),
        mac_hex16("text", b"ab,c")
    );
    assert_eq!(s(&ok(&p, b"\"\",a\"b,\"c\n")), want);
}

#[test]
fn csv_custom_quote_escape_null_and_replacement_quoting() {
    let fmt = CopyFormat::Csv {
        delimiter: b';',
        null: b"NULL".to_vec(),
        quote: b'\'',
        escape: b'\\',
    };
    let h = col(MaskAction::Hash, Family::Text);
    let p = plan(fmt, false, &[h, h, NONE, h]);
    let got = ok(
        &p,
        b"'it\\'s; \\\\ \\x';NULL;'a''b';'NULL'\nNUL;;x\\;NULLx\n",
    );
    let want = format!(
        "{};NULL;'a''b';{}\n{};{};x\\;{}\n",
        mac_hex16("text", b"it's; \\ \\x"),
        mac_hex16("text", b"NULL"),
        mac_hex16("text", b"NUL"),
        mac_hex16("text", b""),
        mac_hex16("text", b"NULLx"),
    );
    assert_eq!(s(&got), want);
    // `***` needs quotes when it holds the delimiter or equals the null string.
    let star = CopyFormat::Csv {
        delimiter: b'*',
        null: Vec::new(),
        quote: b'"',
        escape: b'"',
    };
    let p = plan(star, false, &[col(MaskAction::Redact, Family::Text), NONE]);
    assert_eq!(ok(&p, b"x*y\n*y\n"), b"\"***\"*y\n*y\n");
    let stars = CopyFormat::Csv {
        delimiter: b',',
        null: b"***".to_vec(),
        quote: b'"',
        escape: b'"',
    };
    let p = plan(
        stars,
        false,
        &[
            col(MaskAction::Redact, Family::Text),
            col(MaskAction::Null, Family::Int4),
        ],
    );
    assert_eq!(ok(&p, b"x,1\n***,***\n"), b"\"***\",***\n***,***\n");
}

#[test]
fn masked_output_is_written_as_soon_as_known() {
    let p = plan(
        CopyFormat::text(),
        false,
        &[
            col(MaskAction::Null, Family::Text),
            col(MaskAction::Redact, Family::Text),
            col(MaskAction::Hash, Family::Text),
        ],
    );
    let mut r = CopyRewriter::new(p).unwrap();
    let mut out = Vec::new();
    r.rewrite(b"sec", &key(), &mut out).unwrap();
    assert_eq!(out, b"\\N");
    r.rewrite(b"ret\tx", &key(), &mut out).unwrap();
    assert_eq!(out, b"\\N\t***");
    r.rewrite(b"yz\tsecret", &key(), &mut out).unwrap();
    assert_eq!(out, b"\\N\t***\t");
    r.rewrite(b"\n", &key(), &mut out).unwrap();
    assert_eq!(
        s(&out),
        format!("\\N\t***\t{}\n", mac_hex16("text", b"secret"))
    );
    r.finish().unwrap();
}

#[test]
fn typed_columns_in_text_and_csv() {
    use Family::*;
    let h = |f| col(MaskAction::Hash, f);
    let cols = [h(Int2), h(Int4), h(Int8), h(Uuid), h(Bytea), NONE];
    let row = b"-7\t2147483647\t-9223372036854775808\tA0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\t\\\\xDEAD\tkeep\n";
    let got = ok(&plan(CopyFormat::text(), false, &cols), row);
    let m = |f, v: &[u8]| s(&masked(MaskAction::Hash, f, Format::Text, v));
    let want = format!(
        "{}\t{}\t{}\t{}\t\\{}\tkeep\n",
        m(Int2, b"-7"),
        m(Int4, b"2147483647"),
        m(Int8, b"-9223372036854775808"),
        m(Uuid, b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        m(Bytea, b"\\xdead"),
    );
    assert_eq!(s(&got), want);
    let csv =
        b"-7,2147483647,-9223372036854775808,A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11,\\xDEAD,keep\n";
    let got = ok(&plan(CopyFormat::csv(), false, &cols), csv);
    assert_eq!(s(&got), want.replace('\t', ",").replace("\\\\x", "\\x"));
}

#[test]
fn malformed_values_and_rows_are_rejected() {
    use Family::*;
    let h = |f| col(MaskAction::Hash, f);
    let t = |cols: &[CopyColumn], data: &[u8]| {
        let e = rewrite_all_ways(&plan(CopyFormat::text(), false, cols), data).unwrap_err();
        // Nothing of the failing call is written.
        let mut r = CopyRewriter::new(plan(CopyFormat::text(), false, cols)).unwrap();
        let mut out = Vec::new();
        assert!(
            r.rewrite(data, &key(), &mut out)
                .and_then(|()| r.finish())
                .is_err()
        );
        assert!(out.is_empty());
        e
    };
    assert_eq!(
        t(&[h(Int4)], b"12a\n"),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(t(&[h(Uuid)], b"a0eebc99\n"), MaskError::BadUuid);
    assert!(matches!(
        t(&[h(Bytea)], b"\\\\x0a0\n"),
        MaskError::BadBytea(_)
    ));
    assert_eq!(
        t(&[NONE, h(Text)], b"a\tb\tc\n"),
        MaskError::CopyTooManyFields {
            row: 1,
            expected: 2
        }
    );
    assert_eq!(
        t(&[NONE, h(Text)], b"a\tb\na\n"),
        MaskError::CopyFieldCount {
            row: 2,
            expected: 2,
            found: 1
        }
    );
    assert_eq!(
        t(&[NONE], b"a\rb\n"),
        MaskError::CopyMalformed("a carriage return outside a value is not followed by a newline")
    );
    assert_eq!(t(&[h(Text)], b"abc"), MaskError::CopyIncomplete);
    assert_eq!(t(&[h(Text)], b"abc\\"), MaskError::CopyIncomplete);
    let csv = plan(CopyFormat::csv(), false, &[h(Text)]);
    assert_eq!(run(&csv, &[b"\"abc\n"]), Err(MaskError::CopyIncomplete));
    assert!(run(&csv, &[b"a,b\n"]).is_err());
    // After an error every call fails.
    let mut r = CopyRewriter::new(plan(CopyFormat::text(), false, &[NONE])).unwrap();
    let mut out = Vec::new();
    assert!(r.rewrite(b"a\tb\n", &key(), &mut out).is_err());
    assert!(r.rewrite(b"a\n", &key(), &mut out).is_err());
    assert!(r.finish().is_err());
    assert!(out.is_empty());
}

#[test]
fn plans_are_checked() {
    let h = col(MaskAction::Hash, Family::Text);
    let bad = |format, header, cols: &[CopyColumn]| {
        CopyRewriter::new(plan(format, header, cols)).is_err()
    };
    assert!(bad(CopyFormat::text(), false, &[]));
    assert!(bad(CopyFormat::Binary, true, &[h]));
    assert!(bad(
        CopyFormat::text(),
        false,
        &[col(MaskAction::Redact, Family::Int4)]
    ));
    for d in [b'\\', b'\n', b'\r', b'a', b'7', b'.'] {
        assert!(bad(
            CopyFormat::Text {
                delimiter: d,
                null: b"\\N".to_vec()
            },
            false,
            &[h]
        ));
    }
    assert!(bad(
        CopyFormat::Text {
            delimiter: b',',
            null: b"a,b".to_vec()
        },
        false,
        &[h]
    ));
    assert!(bad(
        CopyFormat::Csv {
            delimiter: b'"',
            null: Vec::new(),
            quote: b'"',
            escape: b'"'
        },
        false,
        &[h]
    ));
    assert!(bad(
        CopyFormat::Csv {
            delimiter: b',',
            null: b"\"".to_vec(),
            quote: b'"',
            escape: b'"'
        },
        false,
        &[h]
    ));
    assert!(!bad(
        CopyFormat::Text {
            delimiter: b'X',
            null: Vec::new()
        },
        true,
        &[h]
    ));
}

fn binary(rows: &[Vec<Option<Vec<u8>>>], extension: &[u8]) -> Vec<u8> {
    let mut d = b"PGCOPY\n\xff\r\n\0".to_vec();
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&(extension.len() as u32).to_be_bytes());
    d.extend_from_slice(extension);
    for row in rows {
        d.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for f in row {
            match f {
                None => d.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    d.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    d.extend_from_slice(v);
                }
            }
        }
    }
    d.extend_from_slice(&(-1i16).to_be_bytes());
    d
}

#[test]
fn binary_known_answers_header_extension_and_trailer() {
    use Family::*;
    use MaskAction::*;
    let cols = [
        NONE,
        col(Hash, Int4),
        col(Hash, Text),
        col(Redact, Text),
        col(Null, Uuid),
        col(Hash, Bytea),
        col(Hash, Uuid),
    ];
    let uuid = [7u8; 16];
    let row = |a: &[u8]| {
        vec![
            Some(a.to_vec()),
            Some(42i32.to_be_bytes().to_vec()),
            Some("Zoë".as_bytes().to_vec()),
            Some(b"x".to_vec()),
            Some(uuid.to_vec()),
            Some(Vec::new()),
            Some(uuid.to_vec()),
        ]
    };
    let nulls = vec![None; 7];
    let data = binary(&[row(b"keep"), nulls.clone(), row(b"")], b"ext!");
    let got = ok(&plan(CopyFormat::Binary, false, &cols), &data);
    let m = |f, v: &[u8]| masked(Hash, f, Format::Binary, v);
    let mrow = |a: &[u8]| {
        vec![
            Some(a.to_vec()),
            Some(m(Int4, &42i32.to_be_bytes())),
            Some(mac_hex16("text", "Zoë".as_bytes()).into_bytes()),
            Some(b"***".to_vec()),
            None,
            Some(m(Bytea, b"")),
            Some(m(Uuid, &uuid)),
        ]
    };
    assert_eq!(got, binary(&[mrow(b"keep"), nulls, mrow(b"")], b"ext!"));
    // The int4 hash in binary is the text hash's number.
    let text = masked(Hash, Int4, Format::Text, b"42");
    let bin = m(Int4, &42i32.to_be_bytes());
    assert_eq!(
        s(&text),
        i32::from_be_bytes(bin[..].try_into().unwrap()).to_string()
    );
}

#[test]
fn binary_malformed_data_is_rejected() {
    let h = col(MaskAction::Hash, Family::Int4);
    let p = plan(CopyFormat::Binary, false, &[NONE, h]);
    let good = binary(&[vec![Some(b"a".to_vec()), Some(vec![0, 0, 0, 1])]], b"");
    assert!(rewrite_all_ways(&p, &good).is_ok());
    let three = binary(&[vec![Some(b"a".to_vec()), Some(vec![0, 0, 1])]], b"");
    assert_eq!(
        run(&p, &[&three]),
        Err(MaskError::BadLength {
            family: Family::Int4,
            expected: 4
        })
    );
    let wide = binary(&[vec![Some(b"a".to_vec())]], b"");
    assert_eq!(
        run(&p, &[&wide]),
        Err(MaskError::CopyFieldCount {
            row: 1,
            expected: 2,
            found: 1
        })
    );
    let mut sig = good.clone();
    sig[5] = b'X';
    assert!(run(&p, &[&sig]).is_err());
    let mut oids = good.clone();
    oids[12] = 1; // bit 16 of the flags (big-endian bytes 11..15)
    assert!(run(&p, &[&oids]).is_err());
    let mut lowbits = good.clone();
    lowbits[14] = 1; // bits 0-15 are ignored
    assert!(run(&p, &[&lowbits]).is_ok());
    let mut after = good.clone();
    after.push(0);
    assert!(run(&p, &[&after]).is_err());
    assert_eq!(
        run(&p, &[&good[..good.len() - 2]]),
        Err(MaskError::CopyIncomplete)
    );
    let mut neg = good.clone();
    neg[21..25].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(run(&p, &[&neg]).is_err());
}

#[test]
fn several_rows_in_one_payload_and_rows_across_payloads() {
    let h = col(MaskAction::Hash, Family::Text);
    let p = plan(CopyFormat::text(), false, &[NONE, h]);
    let one = run(&p, &[b"a\tx\nb\ty\nc\tz\n"]).unwrap();
    let many = run(&p, &[b"a\tx\nb", b"\ty\nc\tz", b"\n"]).unwrap();
    assert_eq!(one, many);
    assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 3);
}

// --- property test: random rows, random formats, random splits, against a model ---

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_value(rng: &mut Rng, family: Family) -> Option<Vec<u8>> {
    if rng.below(5) == 0 {
        return None;
    }
    Some(match family {
        Family::Int4 => (rng.next() as i32).to_string().into_bytes(),
        _ => {
            const ALPHABET: &[&[u8]] = &[
                b"a",
                b"Z",
                b"\t",
                b"\n",
                b"\r",
                b"\\",
                b",",
                b"\"",
                b"|",
                b"N",
                "ë".as_bytes(),
                "日".as_bytes(),
                b" ",
                b"\x0b",
            ];
            let n = rng.below(6);
            (0..n)
                .flat_map(|_| ALPHABET[rng.below(ALPHABET.len())].to_vec())
                .collect()
        }
    })
}

/// PostgreSQL's COPY TO encoding of one value (CopyAttributeOutText / CopyAttributeOutCSV).
fn encode(format: &CopyFormat, v: &Option<Vec<u8>>, out: &mut Vec<u8>) {
    match (format, v) {
        (CopyFormat::Text { null, .. } | CopyFormat::Csv { null, .. }, None) => {
            out.extend_from_slice(null)
        }
        (CopyFormat::Text { delimiter, .. }, Some(v)) => escape_text(out, v, *delimiter, false),
        (
            CopyFormat::Csv {
                delimiter,
                null,
                quote,
                escape,
            },
            Some(v),
        ) => {
            let q = v == null
                || v.iter()
                    .any(|&b| b == *delimiter || b == *quote || b == b'\n' || b == b'\r');
            if !q {
                out.extend_from_slice(v);
                return;
            }
            out.push(*quote);
            for &b in v {
                if b == *quote || b == *escape {
                    out.push(*escape);
                }
                out.push(b);
            }
            out.push(*quote);
        }
        (CopyFormat::Binary, _) => {}
    }
}

#[test]
fn property_random_rows_and_splits_match_the_model() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..150 {
        let formats = [
            CopyFormat::text(),
            CopyFormat::Text {
                delimiter: b'|',
                null: b"nul".to_vec(),
            },
            CopyFormat::csv(),
            CopyFormat::Csv {
                delimiter: b'|',
                null: b"N".to_vec(),
                quote: b'\'',
                escape: b'\\',
            },
            CopyFormat::Binary,
        ];
        let format = formats[case % formats.len()].clone();
        let ncols = 1 + rng.below(4);
        let columns: Vec<(CopyColumn, Family)> = (0..ncols)
            .map(|_| {
                let family = if rng.below(3) == 0 {
                    Family::Int4
                } else {
                    Family::Text
                };
                let mask = match rng.below(5) {
                    0 | 1 => None,
                    2 => Some((MaskAction::Null, family)),
                    3 if family == Family::Text => Some((MaskAction::Redact, family)),
                    _ => Some((MaskAction::Hash, family)),
                };
                (CopyColumn { mask }, family)
            })
            .collect();
        let rows: Vec<Vec<Option<Vec<u8>>>> = (0..1 + rng.below(4))
            .map(|_| {
                columns
                    .iter()
                    .map(|(_, f)| random_value(&mut rng, *f))
                    .collect()
            })
            .collect();
        let fmt = if matches!(format, CopyFormat::Binary) {
            Format::Binary
        } else {
            Format::Text
        };
        let mask_row = |row: &Vec<Option<Vec<u8>>>| -> Vec<Option<Vec<u8>>> {
            row.iter()
                .zip(&columns)
                .map(|(v, (c, family))| match c.mask {
                    None => v.clone(),
                    Some((action, _)) => {
                        let mut out = Vec::new();
                        let bin;
                        let v = match (fmt, family, v) {
                            (Format::Binary, Family::Int4, Some(t)) => {
                                bin = s(t).parse::<i32>().unwrap().to_be_bytes();
                                Some(&bin[..])
                            }
                            _ => v.as_deref(),
                        };
                        mask_value(action, *family, fmt, &key(), v, &mut out)
                            .unwrap()
                            .then_some(out)
                    }
                })
                .collect()
        };
        let (input, expected) = match &format {
            CopyFormat::Binary => {
                let bin = |row: &Vec<Option<Vec<u8>>>| -> Vec<Option<Vec<u8>>> {
                    row.iter()
                        .zip(&columns)
                        .map(|(v, (_, f))| match (v, f) {
                            (Some(t), Family::Int4) => {
                                Some(s(t).parse::<i32>().unwrap().to_be_bytes().to_vec())
                            }
                            _ => v.clone(),
                        })
                        .collect()
                };
                let input: Vec<_> = rows.iter().map(bin).collect();
                let expected: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        let m = mask_row(r);
                        // Unmasked int4 columns stay binary.
                        m.into_iter()
                            .zip(bin(r))
                            .zip(&columns)
                            .map(|((m, b), (c, _))| if c.mask.is_none() { b } else { m })
                            .collect()
                    })
                    .collect();
                (binary(&input, b""), binary(&expected, b""))
            }
            CopyFormat::Text { delimiter, .. } | CopyFormat::Csv { delimiter, .. } => {
                let mut input = Vec::new();
                let mut expected = Vec::new();
                let rw = CopyRewriter::new(plan(format.clone(), false, &[NONE])).unwrap();
                for row in &rows {
                    for (n, (v, m)) in row.iter().zip(mask_row(row)).enumerate() {
                        if n > 0 {
                            input.push(*delimiter);
                            expected.push(*delimiter);
                        }
                        encode(&format, v, &mut input);
                        match (&columns[n].0.mask, m) {
                            (None, _) => encode(&format, v, &mut expected),
                            (Some(_), None) => encode(&format, &None, &mut expected),
                            (Some(_), Some(m)) => write_field(&rw.cfg, &mut expected, &m),
                        }
                    }
                    let crlf = matches!(format, CopyFormat::Csv { .. }) && rng.below(2) == 0;
                    input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                    expected.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                }
                (input, expected)
            }
        };
        let p = plan(
            format.clone(),
            false,
            &columns.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        );
        let whole = run(&p, &[&input]);
        assert_eq!(
            whole.as_ref().map(|v| s(v)),
            Ok(s(&expected)),
            "case {case}: {}",
            s(&input)
        );
        for _ in 0..20 {
            let mut cuts: Vec<usize> = (0..rng.below(5))
                .map(|_| rng.below(input.len() + 1))
                .collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&input[at..c]);
                at = c;
            }
            chunks.push(&input[at..]);
            assert_eq!(run(&p, &chunks), whole, "case {case} chunks {chunks:?}");
        }
    }
}
