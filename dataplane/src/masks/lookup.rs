//! The catalog lookups' connection: logs in to the database as pgate (the login of
//! [`pgate_core::client`], shared with client sessions), runs one simple Query of
//! read-only catalog statements, and collects their rows in text format. Sans-IO: the
//! driver moves the bytes (`runtime::lookup`).
//!
//! What this module must never do: buffer without a limit (every message is framed with
//! a size limit, and the rows are bounded), or take a failed or partial answer for a
//! complete one: only ReadyForQuery after every statement's CommandComplete and no
//! ErrorResponse ends a lookup well.

use pgate_core::wire::{self, frame};

use crate::session::NONCE_BYTES;
use pgate_core::client::{Login, LoginError, LoginStep, write_startup};

/// The largest message a lookup accepts (a catalog row is small).
const MAX_MESSAGE_BYTES: u32 = 1 << 20;
/// The most rows over all statements of one lookup.
pub const MAX_ROWS: usize = 4_000_000;

/// A row in text format (`None`: SQL NULL).
pub type Row = Vec<Option<String>>;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("login failed: {0}")]
    Login(#[from] LoginError),
    #[error("the database refused the lookup: {0}")]
    Server(String),
    #[error("malformed message from the database: {0}")]
    Wire(#[from] wire::WireError),
    #[error("unexpected message {0:?} from the database")]
    Unexpected(char),
    #[error("more than {MAX_ROWS} rows")]
    TooManyRows,
    #[error("the database closed the connection before the lookup was answered")]
    Closed,
}

enum Phase {
    Login,
    Startup,
    Query,
    Done,
}

/// One lookup: login, one Query, its rows.
pub struct Lookup {
    login: Login,
    user: String,
    password: String,
    sql: String,
    phase: Phase,
    out: Vec<u8>,
    /// Rows of each statement, in order; the last one is being filled.
    results: Vec<Vec<Row>>,
    rows: usize,
}

impl Lookup {
    /// The startup packet is ready to send at once (`poll_output`).
    pub fn new(
        user: &str,
        password: &str,
        database: &str,
        nonce: [u8; NONCE_BYTES],
        sql: String,
    ) -> Self {
        let mut out = Vec::with_capacity(256);
        write_startup(
            &mut out,
            [
                ("user", user),
                ("database", database),
                ("client_encoding", "UTF8"),
                ("application_name", "pgate catalog lookup"),
                // Every name in the lookups is qualified; literals are standard strings.
                (
                    "options",
                    "-c search_path=pg_catalog -c standard_conforming_strings=on",
                ),
            ],
        );
        Lookup {
            login: Login::new(nonce),
            user: user.to_string(),
            password: password.to_string(),
            sql,
            phase: Phase::Login,
            out,
            results: vec![Vec::new()],
            rows: 0,
        }
    }

    /// Bytes to send to the database.
    pub fn poll_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The rows of each statement of the query (once done).
    pub fn into_results(mut self) -> Vec<Vec<Row>> {
        // The entry opened after the last CommandComplete holds nothing.
        if self.results.last().is_some_and(|r| r.is_empty()) {
            self.results.pop();
        }
        self.results
    }

    /// Bytes from the database; returns how many were consumed.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<usize, LookupError> {
        let mut used = 0;
        while !self.is_done() {
            let Some(f) = frame(&input[used..], MAX_MESSAGE_BYTES)? else {
                break;
            };
            used += f.len;
            self.on_message(f.tag, f.body)?;
        }
        Ok(used)
    }

    fn on_message(&mut self, tag: u8, body: &[u8]) -> Result<(), LookupError> {
        match (&self.phase, tag) {
            (_, b'E') => Err(LookupError::Server(
                wire::error_field(body, b'M')
                    .unwrap_or("an error")
                    .to_string(),
            )),
            (_, b'N' | b'S' | b'K' | b'A') => Ok(()),
            (Phase::Login, b'R') => {
                let step =
                    self.login
                        .handle_auth(body, &self.user, &self.password, &mut self.out)?;
                if step == LoginStep::Authenticated {
                    self.phase = Phase::Startup;
                }
                Ok(())
            }
            (Phase::Startup, b'Z') => {
                let mut q = Vec::with_capacity(self.sql.len() + 1);
                q.extend_from_slice(self.sql.as_bytes());
                q.push(0);
                wire::write_message(&mut self.out, b'Q', &q);
                self.phase = Phase::Query;
                Ok(())
            }
            (Phase::Query, b'T') => Ok(()),
            (Phase::Query, b'D') => {
                self.rows += 1;
                if self.rows > MAX_ROWS {
                    return Err(LookupError::TooManyRows);
                }
                let row = parse_row(body)?;
                if let Some(r) = self.results.last_mut() {
                    r.push(row);
                }
                Ok(())
            }
            (Phase::Query, b'C') => {
                self.results.push(Vec::new());
                Ok(())
            }
            (Phase::Query, b'Z') => {
                self.phase = Phase::Done;
                Ok(())
            }
            (_, t) => Err(LookupError::Unexpected(t as char)),
        }
    }
}

/// DataRow: "Int16 The number of column values … Int32 The length of the column value,
/// in bytes … -1 indicates a NULL column value … Byten The value of the column".
fn parse_row(body: &[u8]) -> Result<Row, LookupError> {
    let mut r = wire::Reader::new(body, "DataRow");
    let n = r.i16()?;
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = r.i32()?;
        if len < 0 {
            row.push(None);
            continue;
        }
        let v = r.bytes(len as usize)?;
        row.push(Some(String::from_utf8_lossy(v).into_owned()));
    }
    Ok(row)
}
