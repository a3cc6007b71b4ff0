//! The audit log's hash chain: every line carries `"chain":"<hex>"`, the BLAKE3 digest
//! of the previous line's chain value and this line's text without it. Each file opens
//! with an `audit-start` line naming the instance, the table in force and `prev`, the
//! chain value the chain continues from (the last line of the file before it, or of the
//! same file when pgate restarts and appends; zeros for a new chain). An edited, removed,
//! inserted or reordered line breaks the chain at that point, and `pgate audit verify`
//! names the first line that does not follow from the one before it. The newest chain
//! value (the head) is what an operator ships elsewhere: without a copy of it, lines cut
//! off at the end cannot be told from lines never written.
//!
//! What this module must never do: change a line's text other than by appending its
//! chain value.

use std::io::{self, BufRead};

/// A chain value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainValue(pub [u8; 32]);

impl ChainValue {
    pub const GENESIS: ChainValue = ChainValue([0; 32]);

    pub fn hex(&self) -> String {
        self.hex_digits().to_string()
    }

    /// The 64 lowercase hex digits, without allocating (the writer appends one per line).
    fn hex_digits(&self) -> impl std::ops::Deref<Target = str> {
        blake3::Hash::from_bytes(self.0).to_hex()
    }

    pub fn from_hex(s: &str) -> Option<ChainValue> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ChainValue(out))
    }
}

const FIELD: &str = ",\"chain\":\"";

/// The chain value of `text` (a line without its chain field and closing brace) after
/// `prev`.
fn link(prev: &ChainValue, text: &[u8]) -> ChainValue {
    let mut h = blake3::Hasher::new();
    h.update(&prev.0);
    h.update(text);
    ChainValue(*h.finalize().as_bytes())
}

/// The writer's side: seals lines in order.
pub struct Chain {
    head: ChainValue,
}

impl Chain {
    pub fn new(prev: ChainValue) -> Chain {
        Chain { head: prev }
    }

    pub fn head(&self) -> ChainValue {
        self.head
    }

    /// Appends `line` (a JSON object, with or without its newline) to `out` with its chain
    /// value, and advances the head. A line that is not a JSON object is sealed as a JSON
    /// string inside one, so that nothing unsealed reaches the file.
    pub fn seal(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let start = out.len();
        match line.strip_suffix(b"}") {
            Some(body) if line.first() == Some(&b'{') => out.extend_from_slice(body),
            _ => {
                out.extend_from_slice(b"{\"event\":\"unparsed\",\"text\":");
                let text = String::from_utf8_lossy(line);
                out.extend_from_slice(
                    serde_json::Value::String(text.into_owned())
                        .to_string()
                        .as_bytes(),
                );
            }
        }
        self.head = link(&self.head, &out[start..]);
        out.extend_from_slice(FIELD.as_bytes());
        out.extend_from_slice(self.head.hex_digits().as_bytes());
        out.extend_from_slice(b"\"}\n");
    }

    /// The `audit-start` line opening a file (or a restart appending to one), sealed.
    pub fn start_line(&mut self, ts_ms: u64, instance: u64, table: &str, out: &mut Vec<u8>) {
        let line = format!(
            "{{\"ts_ms\":{ts_ms},\"event\":\"audit-start\",\"instance\":\"{instance:016x}\",\"table\":\"{table}\",\"prev\":\"{}\"}}",
            self.head.hex()
        );
        self.seal(line.as_bytes(), out);
    }
}

/// Splits a sealed line into its text and chain value.
fn unseal(line: &str) -> Option<(&str, ChainValue)> {
    let body = line.strip_suffix("\"}")?;
    let at = body.rfind(FIELD)?;
    let value = ChainValue::from_hex(&body[at + FIELD.len()..])?;
    Some((&body[..at], value))
}

/// The chain value the last line of an existing file ends with (to continue the chain
/// after a restart), if it has one.
pub fn last_chain_value(text_tail: &str) -> Option<ChainValue> {
    let last = text_tail.lines().rev().find(|l| !l.trim().is_empty())?;
    unseal(last).map(|(_, v)| v)
}

/// Why a log does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(
        "{file}:{line}: the line has no chain value (it was edited, or written by something other than pgate)"
    )]
    Unsealed { file: String, line: usize },
    #[error(
        "{file}:{line}: the line does not follow from the line before it: it was edited, or lines before it were removed, inserted or reordered"
    )]
    Broken { file: String, line: usize },
    #[error(
        "{file}:1: the file does not continue the chain of the file before it (its audit-start line names another `prev`): a file is missing, out of order, or its end was cut off"
    )]
    Discontinuous { file: String },
    #[error(
        "{file}:1: the chain does not start here (its audit-start line continues an earlier file): pass the older files first, or drop --from-genesis"
    )]
    NotGenesis { file: String },
    #[error(
        "the chain head is {found}, not the expected {expected}: lines at the end were removed, or the copy of the head is from another point of the log"
    )]
    HeadMismatch { expected: String, found: String },
    #[error("{file}: {cause}")]
    Io { file: String, cause: String },
}

/// What `verify` also requires of a log.
#[derive(Debug, Default)]
pub struct Expect {
    /// The first file starts the chain (its audit-start line's `prev` is zeros): no older
    /// file was left out.
    pub from_genesis: bool,
    /// The chain head (hex) as pgate printed it at exit or a copy kept elsewhere: no line
    /// at the end was removed.
    pub head: Option<ChainValue>,
}

/// What a verified log holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub lines: usize,
    pub head: ChainValue,
}

/// Verifies files in order (the oldest first): each line must follow from the one
/// before it; each file after the first must continue the chain of the one before.
pub fn verify_files(paths: &[std::path::PathBuf]) -> Result<Verified, VerifyError> {
    verify_files_expecting(paths, &Expect::default())
}

/// [`verify_files`], and what `expect` requires.
pub fn verify_files_expecting(
    paths: &[std::path::PathBuf],
    expect: &Expect,
) -> Result<Verified, VerifyError> {
    let mut head = None;
    let mut lines = 0;
    for (i, p) in paths.iter().enumerate() {
        let name = p.display().to_string();
        let f = std::fs::File::open(p).map_err(|e| VerifyError::Io {
            file: name.clone(),
            cause: e.to_string(),
        })?;
        if i == 0 && expect.from_genesis {
            let mut first = String::new();
            io::BufReader::new(&f)
                .read_line(&mut first)
                .map_err(|e| VerifyError::Io {
                    file: name.clone(),
                    cause: e.to_string(),
                })?;
            let starts = unseal(first.trim_end_matches('\n'))
                .and_then(|(text, _)| start_prev(text))
                == Some(ChainValue::GENESIS);
            if !starts {
                return Err(VerifyError::NotGenesis { file: name });
            }
        }
        let f = std::fs::File::open(p).map_err(|e| VerifyError::Io {
            file: name.clone(),
            cause: e.to_string(),
        })?;
        let v = verify_lines(&name, io::BufReader::new(f), head)?;
        lines += v.lines;
        head = Some(v.head);
    }
    let head = head.unwrap_or(ChainValue::GENESIS);
    if let Some(expected) = expect.head
        && expected != head
    {
        return Err(VerifyError::HeadMismatch {
            expected: expected.hex(),
            found: head.hex(),
        });
    }
    Ok(Verified { lines, head })
}

/// Verifies one file's lines, continuing from `head` (the previous file's last value).
pub fn verify_lines(
    file: &str,
    reader: impl BufRead,
    head: Option<ChainValue>,
) -> Result<Verified, VerifyError> {
    let mut prev = head;
    let mut n = 0;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e: io::Error| VerifyError::Io {
            file: file.to_owned(),
            cause: e.to_string(),
        })?;
        let number = i + 1;
        let (text, value) = unseal(&line).ok_or(VerifyError::Unsealed {
            file: file.to_owned(),
            line: number,
        })?;
        if number == 1 {
            // The chain starts from the audit-start line's own `prev`.
            let named = start_prev(text).ok_or(VerifyError::Broken {
                file: file.to_owned(),
                line: 1,
            })?;
            if let Some(p) = prev
                && p != named
            {
                return Err(VerifyError::Discontinuous {
                    file: file.to_owned(),
                });
            }
            prev = Some(named);
        } else if text.contains("\"event\":\"audit-start\"") {
            // A restart appending to the file: its `prev` must be the line before.
            if start_prev(text) != prev {
                return Err(VerifyError::Broken {
                    file: file.to_owned(),
                    line: number,
                });
            }
        }
        let expected = link(&prev.unwrap_or(ChainValue::GENESIS), text.as_bytes());
        if expected != value {
            return Err(VerifyError::Broken {
                file: file.to_owned(),
                line: number,
            });
        }
        prev = Some(value);
        n += 1;
    }
    Ok(Verified {
        lines: n,
        head: prev.unwrap_or(ChainValue::GENESIS),
    })
}

/// The `prev` an audit-start line names.
fn start_prev(text: &str) -> Option<ChainValue> {
    if !text.contains("\"event\":\"audit-start\"") {
        return None;
    }
    let at = text.rfind("\"prev\":\"")? + 8;
    ChainValue::from_hex(text.get(at..at + 64)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(n: usize) -> Vec<String> {
        let mut c = Chain::new(ChainValue::GENESIS);
        let mut out = Vec::new();
        c.start_line(1, 7, "00ff", &mut out);
        for i in 0..n {
            c.seal(
                format!("{{\"event\":\"statement\",\"n\":{i}}}\n").as_bytes(),
                &mut out,
            );
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn check(lines: &[String]) -> Result<Verified, VerifyError> {
        let text = lines.join("\n") + "\n";
        verify_lines("a.jsonl", text.as_bytes(), None)
    }

    #[test]
    fn an_untouched_log_verifies_and_every_change_is_found_where_it_is() {
        let lines = sealed(5);
        let ok = check(&lines).unwrap();
        assert_eq!(ok.lines, 6);
        assert_eq!(last_chain_value(&lines.join("\n")), Some(ok.head));

        let broken = |l: usize| {
            Err(VerifyError::Broken {
                file: "a.jsonl".into(),
                line: l,
            })
        };
        // Edited.
        let mut e = lines.clone();
        e[3] = e[3].replace("\"n\":2", "\"n\":9");
        assert_eq!(check(&e), broken(4));
        // Removed.
        let mut r = lines.clone();
        r.remove(2);
        assert_eq!(check(&r), broken(3));
        // Inserted (a copy of another line).
        let mut i = lines.clone();
        i.insert(4, lines[1].clone());
        assert_eq!(check(&i), broken(5));
        // Reordered.
        let mut o = lines.clone();
        o.swap(2, 3);
        assert_eq!(check(&o), broken(3));
        // A chain value stripped.
        let mut u = lines.clone();
        u[5] = "{\"event\":\"statement\"}".into();
        assert_eq!(
            check(&u),
            Err(VerifyError::Unsealed {
                file: "a.jsonl".into(),
                line: 6
            })
        );
    }

    #[test]
    fn rotation_continues_the_chain_and_a_missing_file_is_found() {
        let mut c = Chain::new(ChainValue::GENESIS);
        let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
        c.start_line(1, 7, "t", &mut a);
        c.seal(b"{\"n\":1}", &mut a);
        c.start_line(2, 7, "t", &mut b);
        c.seal(b"{\"n\":2}", &mut b);
        c.start_line(3, 7, "t", &mut d);
        c.seal(b"{\"n\":3}", &mut d);
        let va = verify_lines("a", &a[..], None).unwrap();
        let vb = verify_lines("b", &b[..], Some(va.head)).unwrap();
        verify_lines("d", &d[..], Some(vb.head)).unwrap();
        assert_eq!(
            verify_lines("d", &d[..], Some(va.head)),
            Err(VerifyError::Discontinuous { file: "d".into() })
        );
    }

    #[test]
    fn from_genesis_and_expect_head_find_a_missing_first_file_and_a_cut_end() {
        let dir = tempfile_dir("expect");
        let mut c = Chain::new(ChainValue::GENESIS);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.start_line(1, 7, "t", &mut a);
        c.seal(b"{\"n\":1}", &mut a);
        c.start_line(2, 7, "t", &mut b);
        c.seal(b"{\"n\":2}", &mut b);
        c.seal(b"{\"n\":3}", &mut b);
        let (pa, pb) = (dir.join("a"), dir.join("b"));
        std::fs::write(&pa, &a).unwrap();
        std::fs::write(&pb, &b).unwrap();
        let both = [pa.clone(), pb.clone()];
        let head = c.head();
        let strict = Expect {
            from_genesis: true,
            head: ChainValue::from_hex(&head.hex()),
        };
        let v = verify_files_expecting(&both, &strict).unwrap();
        assert_eq!((v.lines, v.head), (5, head));
        // Without the first file: each file verifies on its own, but not from genesis.
        verify_files(std::slice::from_ref(&pb)).unwrap();
        assert_eq!(
            verify_files_expecting(std::slice::from_ref(&pb), &strict),
            Err(VerifyError::NotGenesis {
                file: pb.display().to_string()
            })
        );
        // The last line cut off: every line left follows, the head does not.
        let cut = b.len() - b.rsplit(|x| *x == b'\n').nth(1).unwrap().len() - 1;
        std::fs::write(&pb, &b[..cut]).unwrap();
        verify_files(&both).unwrap();
        assert!(matches!(
            verify_files_expecting(&both, &strict),
            Err(VerifyError::HeadMismatch { .. })
        ));
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pgate-chain-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_line_that_is_not_an_object_is_sealed_inside_one() {
        let mut c = Chain::new(ChainValue::GENESIS);
        let mut out = Vec::new();
        c.start_line(1, 1, "t", &mut out);
        c.seal(b"not json", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\"text\":\"not json\""));
        verify_lines("x", text.as_bytes(), None).unwrap();
    }
}
