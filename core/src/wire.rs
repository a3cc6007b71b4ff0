//! PostgreSQL wire protocol v3 framing: borrowed views over messages, and writers for the
//! few messages pgate produces itself.
//!
//! This module only frames and parses; it never decides and never does I/O. Views borrow
//! the receive buffer (nothing is copied or allocated); writers append to a caller-owned,
//! reused `Vec<u8>`. Every length comes from outside and is checked against
//! `max_message_bytes` before anything else is read.
//!
//! From the protocol docs (§55.2, "Message Flow", and §55.7, "Message Formats"): "All
//! communication is through a stream of messages. The first byte of a message identifies the
//! message type, and the next four bytes specify the length of the rest of the message (this
//! length count includes itself, but not the message-type byte)." — except the startup-phase
//! messages (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest), which have no type
//! byte: "For historical reasons, the very first message sent by the client (the startup
//! message) has no initial message-type byte."

/// Protocol version 3.0 in a StartupMessage.
pub const PROTOCOL_3_0: u32 = 196_608;
/// "The SSL request code. The value is chosen to contain 1234 in the most significant 16
/// bits, and 5679 in the least significant 16 bits."
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// GSSENCRequest: 1234 / 5680.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// CancelRequest: 1234 / 5678.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// Why bytes could not be framed. Every variant is a protocol violation (SQLSTATE 08P01)
/// that ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message length {0} is invalid (must be at least 4)")]
    LengthTooSmall(i64),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    #[error("unknown message type {0:?}")]
    UnknownType(char),
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedProtocol { major: u16, minor: u16 },
}

/// A complete message found at the start of a buffer: its type byte (0 for startup-phase
/// messages), its body (after the length), and how many bytes it occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub tag: u8,
    pub body: &'a [u8],
    pub len: usize,
}

/// Frames one typed message (`tag`, `i32` length, body) from the start of `buf`.
/// `Ok(None)`: more bytes are needed. The length is validated before the body is awaited, so
/// a hostile 2 GiB length is refused at once instead of being buffered for.
pub fn frame(buf: &[u8], max_message_bytes: u32) -> Result<Option<Frame<'_>>, WireError> {
    let Some(header) = buf.get(..5) else {
        return Ok(None);
    };
    let tag = header[0];
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len < 4 {
        return Err(WireError::LengthTooSmall(i64::from(len)));
    }
    let len = len as u32;
    if len > max_message_bytes {
        return Err(WireError::TooLarge {
            len: u64::from(len),
            max: max_message_bytes,
        });
    }
    let total = 1 + len as usize;
    match buf.get(5..total) {
        Some(body) => Ok(Some(Frame {
            tag,
            body,
            len: total,
        })),
        None => Ok(None),
    }
}

/// Frames one startup-phase message (no type byte) from the start of `buf`.
pub fn frame_startup(buf: &[u8], max_message_bytes: u32) -> Result<Option<Frame<'_>>, WireError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    // The shortest startup-phase message is SSLRequest/GSSENCRequest: length 8.
    if len < 8 {
        return Err(WireError::LengthTooSmall(i64::from(len)));
    }
    let len = len as u32;
    if len > max_message_bytes {
        return Err(WireError::TooLarge {
            len: u64::from(len),
            max: max_message_bytes,
        });
    }
    match buf.get(4..len as usize) {
        Some(body) => Ok(Some(Frame {
            tag: 0,
            body,
            len: len as usize,
        })),
        None => Ok(None),
    }
}

/// A cursor over a message body. Every read is bounds-checked and fails with `Malformed`.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }
    fn err(&self) -> WireError {
        WireError::Malformed(self.what)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self.buf.split_first().ok_or(self.err())?;
        self.buf = rest;
        Ok(b)
    }
    pub fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(self.i32()? as u32)
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(self.err());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    /// A NUL-terminated string (the protocol's `String`), which must be UTF-8: every
    /// encoding pgate accepts (client_encoding UTF8 is enforced at startup) is.
    pub fn cstr(&mut self) -> Result<&'a str, WireError> {
        let nul = self.buf.iter().position(|&b| b == 0).ok_or(self.err())?;
        let s = std::str::from_utf8(&self.buf[..nul]).map_err(|_| self.err())?;
        self.buf = &self.buf[nul + 1..];
        Ok(s)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Requires the body to be fully consumed (trailing bytes are a malformed message).
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err())
        }
    }
}

/// Startup-phase messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup<'a> {
    SslRequest,
    GssEncRequest,
    Cancel {
        process_id: i32,
        secret_key: i32,
    },
    /// Protocol 3.x with its parameters (`name\0value\0…\0`).
    Startup {
        minor: u16,
        params: Params<'a>,
    },
}

/// The name/value pairs of a StartupMessage, validated once, iterated without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut r = Reader::new(self.raw, "StartupMessage");
        std::iter::from_fn(move || {
            let k = r.cstr().ok()?;
            if k.is_empty() {
                return None;
            }
            let v = r.cstr().ok()?;
            Some((k, v))
        })
    }
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    /// The raw `name\0value\0…\0` bytes (to forward a filtered copy upstream).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// Maximum startup parameters pgate accepts (PostgreSQL has no fixed limit; pgate does).
pub const MAX_STARTUP_PARAMS: usize = 64;

pub fn parse_startup<'a>(f: &Frame<'a>) -> Result<Startup<'a>, WireError> {
    let mut r = Reader::new(f.body, "StartupMessage");
    let code = r.u32()?;
    match code {
        SSL_REQUEST_CODE => {
            r.finish()?;
            Ok(Startup::SslRequest)
        }
        GSSENC_REQUEST_CODE => {
            r.finish()?;
            Ok(Startup::GssEncRequest)
        }
        CANCEL_REQUEST_CODE => {
            let process_id = r.i32()?;
            let secret_key = r.i32()?;
            r.finish()?;
            Ok(Startup::Cancel {
                process_id,
                secret_key,
            })
        }
        v if v >> 16 == 3 => {
            let raw = r.rest();
            // Validate the whole parameter list now: pairs of UTF-8 C strings, ending in
            // one empty string, with nothing after it.
            let mut p = Reader::new(raw, "StartupMessage");
            let mut n = 0usize;
            loop {
                let k = p.cstr()?;
                if k.is_empty() {
                    break;
                }
                p.cstr()?;
                n += 1;
                if n > MAX_STARTUP_PARAMS {
                    return Err(WireError::Malformed("StartupMessage (too many parameters)"));
                }
            }
            p.finish()?;
            Ok(Startup::Startup {
                minor: (v & 0xFFFF) as u16,
                params: Params { raw },
            })
        }
        v => Err(WireError::UnsupportedProtocol {
            major: (v >> 16) as u16,
            minor: (v & 0xFFFF) as u16,
        }),
    }
}

/// Frontend (client → server) messages after startup, as borrowed views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend<'a> {
    /// 'Q': simple query.
    Query { sql: &'a str },
    /// 'P': Parse(statement name, query, parameter type OIDs).
    Parse {
        statement: &'a str,
        sql: &'a str,
        param_types: &'a [u8],
    },
    /// 'B': Bind(portal, statement, …); the parameter bytes are kept raw.
    Bind {
        portal: &'a str,
        statement: &'a str,
        rest: &'a [u8],
    },
    /// 'D': Describe('S' statement | 'P' portal, name).
    Describe { kind: u8, name: &'a str },
    /// 'E': Execute(portal, max rows; 0 = no limit).
    Execute { portal: &'a str, max_rows: i32 },
    /// 'C': Close('S' | 'P', name).
    Close { kind: u8, name: &'a str },
    /// 'S'
    Sync,
    /// 'H'
    Flush,
    /// 'X'
    Terminate,
    /// 'd'
    CopyData(&'a [u8]),
    /// 'c'
    CopyDone,
    /// 'f'
    CopyFail { message: &'a str },
    /// 'F': FunctionCall(function OID, …).
    FunctionCall { oid: u32, rest: &'a [u8] },
    /// 'p': PasswordMessage / SASLInitialResponse / SASLResponse / GSSResponse (the meaning
    /// depends on the authentication exchange in progress).
    Password(&'a [u8]),
}

pub fn parse_frontend<'a>(f: &Frame<'a>) -> Result<Frontend<'a>, WireError> {
    let body = f.body;
    Ok(match f.tag {
        b'Q' => {
            let mut r = Reader::new(body, "Query");
            let sql = r.cstr()?;
            r.finish()?;
            Frontend::Query { sql }
        }
        b'P' => {
            let mut r = Reader::new(body, "Parse");
            let statement = r.cstr()?;
            let sql = r.cstr()?;
            let n = r.i16()?;
            if n < 0 {
                return Err(WireError::Malformed("Parse"));
            }
            let param_types = r.bytes(n as usize * 4)?;
            r.finish()?;
            Frontend::Parse {
                statement,
                sql,
                param_types,
            }
        }
        b'B' => {
            let mut r = Reader::new(body, "Bind");
            let portal = r.cstr()?;
            let statement = r.cstr()?;
            let rest = r.rest();
            validate_bind_rest(rest)?;
            Frontend::Bind {
                portal,
                statement,
                rest,
            }
        }
        b'D' | b'C' => {
            let what = if f.tag == b'D' { "Describe" } else { "Close" };
            let mut r = Reader::new(body, what);
            let kind = r.u8()?;
            if kind != b'S' && kind != b'P' {
                return Err(WireError::Malformed(what));
            }
            let name = r.cstr()?;
            r.finish()?;
            if f.tag == b'D' {
                Frontend::Describe { kind, name }
            } else {
                Frontend::Close { kind, name }
            }
        }
        b'E' => {
            let mut r = Reader::new(body, "Execute");
            let portal = r.cstr()?;
            let max_rows = r.i32()?;
            r.finish()?;
            Frontend::Execute { portal, max_rows }
        }
        b'S' | b'H' | b'X' | b'c' => {
            if !body.is_empty() {
                return Err(WireError::Malformed("Sync/Flush/Terminate/CopyDone"));
            }
            match f.tag {
                b'S' => Frontend::Sync,
                b'H' => Frontend::Flush,
                b'X' => Frontend::Terminate,
                _ => Frontend::CopyDone,
            }
        }
        b'd' => Frontend::CopyData(body),
        b'f' => {
            let mut r = Reader::new(body, "CopyFail");
            let message = r.cstr()?;
            r.finish()?;
            Frontend::CopyFail { message }
        }
        b'F' => {
            let mut r = Reader::new(body, "FunctionCall");
            let oid = r.u32()?;
            Frontend::FunctionCall {
                oid,
                rest: r.rest(),
            }
        }
        b'p' => Frontend::Password(body),
        t => return Err(WireError::UnknownType(char::from(t))),
    })
}

/// Bind after the names: Int16 n + n×Int16 formats, Int16 n + n×(Int32 len + bytes, len -1
/// = NULL), Int16 n + n×Int16 result formats. Validated so nothing malformed is forwarded.
fn validate_bind_rest(rest: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(rest, "Bind");
    let nf = r.i16()?;
    if nf < 0 {
        return Err(WireError::Malformed("Bind"));
    }
    for _ in 0..nf {
        let f = r.i16()?;
        if f != 0 && f != 1 {
            return Err(WireError::Malformed("Bind (format code)"));
        }
    }
    let np = r.i16()?;
    if np < 0 {
        return Err(WireError::Malformed("Bind"));
    }
    for _ in 0..np {
        let len = r.i32()?;
        if len < -1 {
            return Err(WireError::Malformed("Bind (parameter length)"));
        }
        if len > 0 {
            r.bytes(len as usize)?;
        }
    }
    let nr = r.i16()?;
    if nr < 0 {
        return Err(WireError::Malformed("Bind"));
    }
    for _ in 0..nr {
        let f = r.i16()?;
        if f != 0 && f != 1 {
            return Err(WireError::Malformed("Bind (result format code)"));
        }
    }
    r.finish()
}

/// Severity of an ErrorResponse pgate writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

/// Appends an ErrorResponse ('E'): fields S (localized severity), V (non-localized), C
/// (SQLSTATE) and M (message), then the terminating zero byte.
pub fn write_error(out: &mut Vec<u8>, severity: Severity, sqlstate: &str, message: &str) {
    let sev = match severity {
        Severity::Error => "ERROR",
        Severity::Fatal => "FATAL",
    };
    let start = out.len();
    out.push(b'E');
    out.extend_from_slice(&[0; 4]);
    for (field, value) in [(b'S', sev), (b'V', sev), (b'C', sqlstate), (b'M', message)] {
        out.push(field);
        // A NUL inside a value would end the field early: drop it (values are ours or
        // derived from names that cannot contain NUL anyway).
        out.extend(value.bytes().filter(|b| *b != 0));
        out.push(0);
    }
    out.push(0);
    patch_len(out, start);
}

/// Appends ReadyForQuery ('Z') with the transaction status ('I' idle, 'T' in a
/// transaction block, 'E' in a failed transaction block).
pub fn write_ready_for_query(out: &mut Vec<u8>, status: u8) {
    out.extend_from_slice(&[b'Z', 0, 0, 0, 5, status]);
}

/// Appends a message with `tag` and `body`.
pub fn write_message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// The value of field `code` of an ErrorResponse or NoticeResponse body ('C': the
/// SQLSTATE, 'S': the severity, 'M': the message), borrowed. "The message body consists of
/// one or more identified fields, followed by a zero byte as a terminator."
pub fn error_field(body: &[u8], code: u8) -> Option<&str> {
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            return None;
        }
        let end = tail.iter().position(|b| *b == 0)?;
        if field == code {
            return std::str::from_utf8(&tail[..end]).ok();
        }
        rest = &tail[end + 1..];
    }
    None
}

/// Appends Parse ('P') of `sql` as statement `name`, with no parameter types.
pub fn write_parse(out: &mut Vec<u8>, name: &str, sql: &str) {
    let start = out.len();
    out.push(b'P');
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out.extend_from_slice(&0i16.to_be_bytes());
    patch_len(out, start);
}

/// Appends Sync ('S').
pub fn write_sync(out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'S', 0, 0, 0, 4]);
}

fn patch_len(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 1) as u32;
    if let Some(slot) = out.get_mut(start + 1..start + 5) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_message(&mut v, tag, body);
        v
    }

    #[test]
    fn frames_need_whole_messages_and_check_lengths_first() {
        let q = msg(b'Q', b"select 1\0");
        for cut in 0..q.len() {
            assert_eq!(frame(&q[..cut], 1 << 20), Ok(None), "cut at {cut}");
        }
        let f = frame(&q, 1 << 20).unwrap().unwrap();
        assert_eq!((f.tag, f.len), (b'Q', q.len()));
        assert_eq!(parse_frontend(&f), Ok(Frontend::Query { sql: "select 1" }));
        // Hostile lengths are refused from the 5-byte header alone.
        assert_eq!(
            frame(&[b'Q', 0, 0, 0, 0], 1024),
            Err(WireError::LengthTooSmall(0))
        );
        assert_eq!(
            frame(&[b'Q', 0xFF, 0xFF, 0xFF, 0xFF], 1024),
            Err(WireError::LengthTooSmall(-1))
        );
        assert_eq!(
            frame(&[b'Q', 0x7F, 0xFF, 0xFF, 0xFF], 1024),
            Err(WireError::TooLarge {
                len: 0x7FFF_FFFF,
                max: 1024
            })
        );
        assert_eq!(
            frame(&[b'Q', 0x80, 0, 0, 0], 1024),
            Err(WireError::LengthTooSmall(i64::from(i32::MIN)))
        );
    }

    #[test]
    fn startup_messages() {
        let mut ssl = Vec::new();
        ssl.extend_from_slice(&8u32.to_be_bytes());
        ssl.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
        let f = frame_startup(&ssl, 10_000).unwrap().unwrap();
        assert_eq!(parse_startup(&f), Ok(Startup::SslRequest));

        let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0alice\0database\0app\0\0");
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&body);
        let f = frame_startup(&m, 10_000).unwrap().unwrap();
        let Startup::Startup { minor: 0, params } = parse_startup(&f).unwrap() else {
            panic!("not a startup message");
        };
        assert_eq!(params.get("user"), Some("alice"));
        assert_eq!(params.get("database"), Some("app"));
        assert_eq!(params.iter().count(), 2);

        // Missing terminator / trailing garbage / bad version.
        let mut bad = m.clone();
        bad.pop();
        bad[3] -= 1;
        assert!(parse_startup(&frame_startup(&bad, 10_000).unwrap().unwrap()).is_err());
        let mut v2 = m.clone();
        v2[4..8].copy_from_slice(&0x0002_0000u32.to_be_bytes());
        assert!(matches!(
            parse_startup(&frame_startup(&v2, 10_000).unwrap().unwrap()),
            Err(WireError::UnsupportedProtocol { major: 2, .. })
        ));
        assert_eq!(
            frame_startup(&[0, 0, 0, 4], 100),
            Err(WireError::LengthTooSmall(4))
        );
    }

    #[test]
    fn extended_protocol_messages() {
        let p = msg(b'P', b"s1\0select $1\0\x00\x01\x00\x00\x00\x17");
        let f = frame(&p, 1 << 20).unwrap().unwrap();
        assert!(matches!(
            parse_frontend(&f),
            Ok(Frontend::Parse {
                statement: "s1",
                sql: "select $1",
                ..
            })
        ));
        // A parameter count that promises more OIDs than present.
        let p = msg(b'P', b"s1\0select $1\0\x00\x02\x00\x00\x00\x17");
        assert!(parse_frontend(&frame(&p, 1 << 20).unwrap().unwrap()).is_err());

        let b = msg(b'B', b"\0s1\0\x00\x00\x00\x01\x00\x00\x00\x0242\x00\x00");
        assert!(matches!(
            parse_frontend(&frame(&b, 1 << 20).unwrap().unwrap()),
            Ok(Frontend::Bind {
                portal: "",
                statement: "s1",
                ..
            })
        ));
        let b = msg(b'B', b"\0s1\0\x00\x00\x00\x01\x00\x00\x00\x0942\x00\x00");
        assert!(parse_frontend(&frame(&b, 1 << 20).unwrap().unwrap()).is_err());

        let d = msg(b'D', b"Xs1\0");
        assert!(parse_frontend(&frame(&d, 1 << 20).unwrap().unwrap()).is_err());
        let s = msg(b'S', b"x");
        assert!(parse_frontend(&frame(&s, 1 << 20).unwrap().unwrap()).is_err());
        let u = msg(b'?', b"");
        assert_eq!(
            parse_frontend(&frame(&u, 1 << 20).unwrap().unwrap()),
            Err(WireError::UnknownType('?'))
        );
    }

    #[test]
    fn error_response_round_trips_through_framing() {
        let mut out = Vec::new();
        write_error(
            &mut out,
            Severity::Error,
            "42501",
            "permission denied: rule x.kdl:3",
        );
        write_ready_for_query(&mut out, b'I');
        let f = frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag, b'E');
        assert!(f.body.windows(6).any(|w| w == b"C42501"));
        assert_eq!(error_field(f.body, b'C'), Some("42501"));
        assert_eq!(
            error_field(f.body, b'M'),
            Some("permission denied: rule x.kdl:3")
        );
        assert_eq!(error_field(f.body, b'D'), None);
        // Truncated bodies end the search instead of reading past them.
        assert_eq!(error_field(b"C4250", b'C'), None);
        assert_eq!(error_field(b"", b'C'), None);
        let z = frame(&out[f.len..], 1 << 20).unwrap().unwrap();
        assert_eq!((z.tag, z.body), (b'Z', &b"I"[..]));
        let mut p = Vec::new();
        write_parse(&mut p, "s", "select 1");
        write_sync(&mut p);
        let f = frame(&p, 1 << 20).unwrap().unwrap();
        assert!(matches!(
            parse_frontend(&f),
            Ok(Frontend::Parse {
                statement: "s",
                sql: "select 1",
                ..
            })
        ));
        let s = frame(&p[f.len..], 1 << 20).unwrap().unwrap();
        assert_eq!(parse_frontend(&s), Ok(Frontend::Sync));
    }
}
