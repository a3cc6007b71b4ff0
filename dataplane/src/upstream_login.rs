//! pgate's login to the database with its own credential: the startup packet and the
//! answers to the server's authentication requests (SCRAM-SHA-256, md5, cleartext,
//! trust). Sans-IO, and written once: client sessions (`session::upstream`) and the
//! catalog lookups of the result masks (`masks::lookup`) both log in through it.
//!
//! What this module must never do: accept a login the server did not finish proving
//! (once SCRAM began, AuthenticationOk counts only after the server's signature checked
//! out, and no weaker method may follow: a man in the middle could otherwise downgrade
//! the login), or put the credential anywhere but the bytes for the server.

use pgate_core::wire;

use crate::session::NONCE_BYTES;
use crate::session::scram::{SCRAM_SHA_256, ScramClient, ScramError};

/// Where the login stands after an authentication request was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStep {
    /// An answer (if any) was written; more requests follow.
    Continue,
    /// AuthenticationOk: startup answers (ParameterStatus, BackendKeyData,
    /// ReadyForQuery) follow.
    Authenticated,
}

/// Why the login failed. Each names what the operator should look at.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("malformed {0} from the database")]
    Malformed(&'static str),
    #[error("the database left SCRAM authentication unfinished")]
    ScramUnfinished,
    #[error("the database offers no SASL mechanism pgate supports (SCRAM-SHA-256)")]
    NoMechanism,
    #[error("SASL message from the database out of order")]
    OutOfOrder,
    #[error("SCRAM authentication with the database failed: {0}")]
    Scram(#[from] ScramError),
    #[error("the database asked for an authentication method pgate does not support (code {0})")]
    Unsupported(i32),
}

/// One login's state: the SCRAM exchange, once it began.
pub struct UpstreamLogin {
    nonce: [u8; NONCE_BYTES],
    scram: Option<Box<ScramClient>>,
}

impl UpstreamLogin {
    /// `nonce`: fresh randomness for SCRAM's client nonce (passed in: sans-IO).
    pub fn new(nonce: [u8; NONCE_BYTES]) -> Self {
        UpstreamLogin { nonce, scram: None }
    }

    /// An Authentication message's body ('R'): writes the answer into `out`.
    pub fn handle_auth(
        &mut self,
        body: &[u8],
        user: &str,
        password: &str,
        out: &mut Vec<u8>,
    ) -> Result<LoginStep, LoginError> {
        let mut r = wire::Reader::new(body, "Authentication");
        let code = r
            .i32()
            .map_err(|_| LoginError::Malformed("authentication request"))?;
        if let Some(s) = &self.scram
            && matches!(code, 0 | 3 | 5)
            && (code != 0 || !s.is_done())
        {
            return Err(LoginError::ScramUnfinished);
        }
        match code {
            0 => Ok(LoginStep::Authenticated),
            // AuthenticationCleartextPassword
            3 => {
                let mut p = Vec::with_capacity(password.len() + 1);
                p.extend_from_slice(password.as_bytes());
                p.push(0);
                wire::write_message(out, b'p', &p);
                Ok(LoginStep::Continue)
            }
            // AuthenticationMD5Password: "concat('md5', md5(concat(md5(concat(password,
            // username)), random-salt)))"
            5 => {
                let salt = r
                    .bytes(4)
                    .map_err(|_| LoginError::Malformed("md5 request"))?;
                let mut h = postgres_protocol::authentication::md5_hash(
                    user.as_bytes(),
                    password.as_bytes(),
                    [salt[0], salt[1], salt[2], salt[3]],
                )
                .into_bytes();
                h.push(0);
                wire::write_message(out, b'p', &h);
                Ok(LoginStep::Continue)
            }
            // AuthenticationSASL: the mechanisms the server accepts.
            10 => {
                let mut has_scram = false;
                while let Ok(m) = r.cstr() {
                    if m.is_empty() {
                        break;
                    }
                    has_scram |= m == SCRAM_SHA_256;
                }
                if !has_scram {
                    return Err(LoginError::NoMechanism);
                }
                let scram = ScramClient::new(password, &self.nonce);
                // SASLInitialResponse: mechanism, Int32 length, initial response.
                let first = scram.client_first();
                let mut b = Vec::with_capacity(first.len() + 32);
                b.extend_from_slice(SCRAM_SHA_256.as_bytes());
                b.push(0);
                b.extend_from_slice(&(first.len() as i32).to_be_bytes());
                b.extend_from_slice(&first);
                wire::write_message(out, b'p', &b);
                self.scram = Some(Box::new(scram));
                Ok(LoginStep::Continue)
            }
            // AuthenticationSASLContinue / AuthenticationSASLFinal
            11 | 12 => {
                let scram = self.scram.as_mut().ok_or(LoginError::OutOfOrder)?;
                let data = r.rest();
                if code == 11 {
                    let m = scram.handle_server_first(data)?;
                    wire::write_message(out, b'p', &m);
                } else {
                    scram.handle_server_final(data)?;
                }
                Ok(LoginStep::Continue)
            }
            other => Err(LoginError::Unsupported(other)),
        }
    }
}

/// The StartupMessage: protocol 3.0 and `params` (user, database, …) as name/value pairs.
pub fn write_startup<'a>(out: &mut Vec<u8>, params: impl Iterator<Item = (&'a str, &'a str)>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&wire::PROTOCOL_3_0.to_be_bytes());
    for (k, v) in params {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.push(0);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
