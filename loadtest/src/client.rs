//! A lean PostgreSQL client: just enough protocol to drive load, the same code for every
//! target so that client overhead is small and equal.
//!
//! It does: TLS (SSLRequest, rustls), startup, authentication (cleartext — what pgate asks
//! for, the token being the password —, md5, SCRAM-SHA-256 without channel binding: pgate-core's
//! `client`, the login the data plane itself uses upstream), simple
//! Query, and Parse/Bind/Describe/Execute/Sync with unnamed or named statements. Messages
//! are framed with `pgate_core::wire::frame`, so every length from the server is checked
//! against a limit before it is buffered for. It never interprets row values (they are
//! counted, not decoded) and never retries: a failed connection is reported to the caller.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use pgate_core::client;
use pgate_core::wire;
use rand_core::{OsRng, RngCore};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::url::{SslMode, Target};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("protocol: {0}")]
    Wire(#[from] wire::WireError),
    #[error("server closed the connection")]
    Eof,
    #[error("server refused TLS (sslmode requires it)")]
    TlsRefused,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("server error: {0}")]
    Server(String),
    #[error("server asked for a password and the target has none")]
    NoPassword,
    #[error("login: {0}")]
    Login(#[from] client::LoginError),
    #[error("unexpected message {0:?} {1}")]
    Unexpected(char, &'static str),
    #[error("result exceeds the limit of {0} rows")]
    TooManyRows(u64),
}

/// What one statement (or one Sync'ed extended-protocol batch) returned.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub rows: u64,
    /// Every byte received for it, headers included (what "MB/s" measures).
    pub bytes: u64,
    /// The first ErrorResponse, as `SQLSTATE: message`.
    pub error: Option<String>,
}

/// Limits on what the server may send us.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_message_bytes: u32,
    pub max_rows: u64,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(b).await,
            Io::Tls(s) => {
                s.write_all(b).await?;
                // rustls buffers records; flush pushes them to the socket now.
                s.flush().await
            }
        }
    }
    async fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(b).await,
            Io::Tls(s) => s.read(b).await,
        }
    }
}

/// Per-target connection settings, built once.
#[derive(Clone)]
pub struct ConnectSpec {
    pub target: Arc<Target>,
    pub tls: Option<TlsConnector>,
    pub limits: Limits,
}

pub struct Conn {
    io: Io,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the last message handed out, released on the next `recv`.
    consumed: usize,
    out: Vec<u8>,
    scratch: Vec<u8>,
    limits: Limits,
}

/// A message in the receive buffer: its tag, body range and total length.
#[derive(Clone, Debug)]
struct Msg {
    tag: u8,
    body: Range<usize>,
    len: usize,
}

impl Conn {
    /// TCP connect, TLS as the target's sslmode says, startup and authentication, up to the
    /// first ReadyForQuery.
    pub async fn connect(spec: &ConnectSpec) -> Result<Conn, ClientError> {
        let t = &spec.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port)).await?;
        // Requests are single small writes; Nagle would add delay to every one.
        tcp.set_nodelay(true)?;
        let io = match (&spec.tls, t.ssl) {
            (Some(connector), SslMode::Prefer | SslMode::Require | SslMode::VerifyFull) => {
                let mut tcp = tcp;
                tcp.write_all(&client::SSL_REQUEST).await?;
                let mut answer = [0u8; 1];
                tcp.read_exact(&mut answer).await?;
                match answer[0] {
                    b'S' => {
                        let name = ServerName::try_from(t.host.clone())
                            .map_err(|e| ClientError::Tls(e.to_string()))?;
                        let s = connector.connect(name, tcp).await?;
                        Io::Tls(Box::new(s))
                    }
                    b'N' if t.ssl == SslMode::Prefer => Io::Plain(tcp),
                    _ => return Err(ClientError::TlsRefused),
                }
            }
            _ => Io::Plain(tcp),
        };
        let mut c = Conn {
            io,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            consumed: 0,
            out: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(4096),
            limits: spec.limits,
        };
        c.startup(t).await?;
        Ok(c)
    }

    async fn startup(&mut self, t: &Target) -> Result<(), ClientError> {
        self.out.clear();
        client::write_startup(
            &mut self.out,
            [
                ("user", t.user.as_str()),
                ("database", t.database.as_str()),
                ("application_name", "pgate-loadtest"),
            ],
        );
        self.io.write_all(&self.out).await?;

        let mut nonce = [0u8; client::NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let mut login = client::Login::new(nonce);
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'R' => {
                    let body = &self.buf[m.body.clone()];
                    // Cleartext, md5 and SASL need the password; trust and the later SASL
                    // steps do not ask for it again.
                    let code = wire::Reader::new(body, "Authentication").i32()?;
                    let password = match (t.password.as_deref(), code) {
                        (Some(p), _) => p,
                        (None, 3 | 5 | 10) => return Err(ClientError::NoPassword),
                        (None, _) => "",
                    };
                    self.out.clear();
                    login.handle_auth(body, &t.user, password, &mut self.out)?;
                    if !self.out.is_empty() {
                        self.io.write_all(&self.out).await?;
                    }
                }
                b'S' | b'K' | b'N' => {}
                b'Z' => return Ok(()),
                b'E' => return Err(ClientError::Server(error_text(&self.buf[m.body]))),
                t => return Err(ClientError::Unexpected(char::from(t), "during startup")),
            }
        }
    }

    /// Simple Query.
    pub async fn query(&mut self, sql: &[u8]) -> Result<Outcome, ClientError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(sql);
        self.scratch.push(0);
        self.out.clear();
        wire::write_message(&mut self.out, b'Q', &self.scratch);
        self.io.write_all(&self.out).await?;
        self.read_until_ready().await
    }

    /// Parse + Sync of a named statement (once per connection).
    pub async fn prepare(&mut self, name: &str, sql: &str) -> Result<Outcome, ClientError> {
        self.out.clear();
        self.put_parse(name, sql);
        wire::write_message(&mut self.out, b'S', &[]);
        self.io.write_all(&self.out).await?;
        self.read_until_ready().await
    }

    /// Extended protocol, one text parameter: with `statement` empty, Parse of `sql` as the
    /// unnamed statement first (what libpq's PQexecParams sends), else Bind of the named
    /// statement (PQexecPrepared). Then Describe (portal), Execute, Sync.
    pub async fn execute(
        &mut self,
        statement: &str,
        sql: &str,
        param: &[u8],
    ) -> Result<Outcome, ClientError> {
        self.out.clear();
        if statement.is_empty() {
            self.put_parse("", sql);
        }
        // Bind: portal "", statement, 0 parameter formats (text), 1 parameter, 0 result
        // formats (text).
        self.scratch.clear();
        self.scratch.push(0);
        self.scratch.extend_from_slice(statement.as_bytes());
        self.scratch.push(0);
        self.scratch.extend_from_slice(&0i16.to_be_bytes());
        self.scratch.extend_from_slice(&1i16.to_be_bytes());
        self.scratch
            .extend_from_slice(&(param.len() as i32).to_be_bytes());
        self.scratch.extend_from_slice(param);
        self.scratch.extend_from_slice(&0i16.to_be_bytes());
        wire::write_message(&mut self.out, b'B', &self.scratch);
        wire::write_message(&mut self.out, b'D', b"P\0");
        wire::write_message(&mut self.out, b'E', b"\0\0\0\0\0");
        wire::write_message(&mut self.out, b'S', &[]);
        self.io.write_all(&self.out).await?;
        self.read_until_ready().await
    }

    /// Terminate and close (errors ignored: the connection is going away anyway).
    pub async fn close(mut self) {
        self.out.clear();
        wire::write_message(&mut self.out, b'X', &[]);
        let _ = self.io.write_all(&self.out).await;
        if let Io::Tls(s) = &mut self.io {
            let _ = s.shutdown().await;
        }
    }

    fn put_parse(&mut self, name: &str, sql: &str) {
        self.scratch.clear();
        self.scratch.extend_from_slice(name.as_bytes());
        self.scratch.push(0);
        self.scratch.extend_from_slice(sql.as_bytes());
        self.scratch.push(0);
        self.scratch.extend_from_slice(&0i16.to_be_bytes());
        wire::write_message(&mut self.out, b'P', &self.scratch);
    }

    /// Reads messages up to ReadyForQuery, counting rows and bytes.
    async fn read_until_ready(&mut self) -> Result<Outcome, ClientError> {
        let mut o = Outcome::default();
        loop {
            let m = self.recv().await?;
            o.bytes += m.len as u64;
            match m.tag {
                b'D' => {
                    o.rows += 1;
                    if o.rows > self.limits.max_rows {
                        return Err(ClientError::TooManyRows(self.limits.max_rows));
                    }
                }
                b'Z' => return Ok(o),
                b'E' => {
                    if o.error.is_none() {
                        o.error = Some(error_text(&self.buf[m.body]));
                    }
                }
                // RowDescription, CommandComplete, ParseComplete, BindComplete,
                // CloseComplete, NoData, ParameterDescription, EmptyQueryResponse,
                // PortalSuspended, NoticeResponse, ParameterStatus, NotificationResponse.
                b'T' | b'C' | b'1' | b'2' | b'3' | b'n' | b't' | b'I' | b's' | b'N' | b'S'
                | b'A' => {}
                t => return Err(ClientError::Unexpected(char::from(t), "in a result")),
            }
        }
    }

    /// The next complete message; its bytes stay valid until the next call.
    async fn recv(&mut self) -> Result<Msg, ClientError> {
        self.start += self.consumed;
        self.consumed = 0;
        loop {
            let found = wire::frame(
                &self.buf[self.start..self.end],
                self.limits.max_message_bytes,
            )?
            .map(|f| (f.tag, f.len));
            if let Some((tag, len)) = found {
                self.consumed = len;
                return Ok(Msg {
                    tag,
                    body: self.start + 5..self.start + len,
                    len,
                });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), ClientError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // A message bigger than the buffer: `frame` has already checked its length
                // against the limit, so growth stops at max_message_bytes + header.
                let cap = self.limits.max_message_bytes as usize + 5;
                let new = (self.buf.len() * 2).min(cap).max(self.buf.len() + 1);
                self.buf.resize(new, 0);
            }
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(ClientError::Eof);
        }
        self.end += n;
        Ok(())
    }
}

/// `SQLSTATE: message` from an ErrorResponse body, at most 300 characters.
fn error_text(body: &[u8]) -> String {
    let mut code = "";
    let mut msg = "";
    let mut r = wire::Reader::new(body, "ErrorResponse");
    while let Ok(t) = r.u8() {
        if t == 0 {
            break;
        }
        let Ok(v) = r.cstr() else { break };
        match t {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
    }
    let mut s = format!("{code}: {msg}");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_reads_code_and_message() {
        let mut out = Vec::new();
        wire::write_error(
            &mut out,
            wire::Severity::Error,
            "42501",
            "permission denied",
        );
        let f = wire::frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(error_text(f.body), "42501: permission denied");
        assert_eq!(error_text(b"Cxx"), ": ");
    }
}
