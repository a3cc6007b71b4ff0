//! The answers to a server's authentication requests (SCRAM-SHA-256, md5, cleartext,
//! trust). Sans-IO, and written once: the data plane's login upstream (its sessions and the
//! catalog lookups of the result masks), the load test and the tests all log in through it.
//!
//! What this module must never do: accept a login the server did not finish proving
//! (once SCRAM began, AuthenticationOk counts only after the server's signature checked
//! out, and no weaker method may follow: a man in the middle could otherwise downgrade
//! the login), or put the credential anywhere but the bytes for the server.

use crate::wire;

use super::scram::{NONCE_BYTES, SCRAM_SHA_256, ScramClient, ScramError};

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
pub struct Login {
    nonce: [u8; NONCE_BYTES],
    scram: Option<Box<ScramClient>>,
}

impl Login {
    /// `nonce`: fresh randomness for SCRAM's client nonce (passed in: sans-IO).
    pub fn new(nonce: [u8; NONCE_BYTES]) -> Self {
        Login { nonce, scram: None }
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
                let mut h = md5_password(user, password, [salt[0], salt[1], salt[2], salt[3]]);
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

/// The md5 answer: "concat('md5', md5(concat(md5(concat(password, username)),
/// random-salt)))", digests in lower-case hex.
pub fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> Vec<u8> {
    use md5::{Digest, Md5};
    fn hex(out: &mut Vec<u8>, digest: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
    let mut inner = Vec::with_capacity(32);
    hex(
        &mut inner,
        &Md5::new()
            .chain_update(password)
            .chain_update(user)
            .finalize(),
    );
    let mut out = b"md5".to_vec();
    hex(
        &mut out,
        &Md5::new()
            .chain_update(&inner)
            .chain_update(salt)
            .finalize(),
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// postgres-protocol's test vector (and what PostgreSQL stores for md5 passwords).
    #[test]
    fn md5_answer_matches_the_known_vector() {
        assert_eq!(
            md5_password("md5_user", "password", [0x2a, 0x3d, 0x8f, 0xe0]),
            b"md562af4dd09bbb41884907a838a3233294"
        );
    }

    #[test]
    fn scram_is_not_downgraded_and_must_finish() {
        let mut l = Login::new([1; NONCE_BYTES]);
        let mut out = Vec::new();
        let mut sasl = 10i32.to_be_bytes().to_vec();
        sasl.extend_from_slice(b"SCRAM-SHA-256\0\0");
        assert_eq!(
            l.handle_auth(&sasl, "u", "p", &mut out).unwrap(),
            LoginStep::Continue
        );
        assert_eq!(out[0], b'p');
        // AuthenticationOk before the server's signature, or a cleartext request after
        // SCRAM began: refused.
        let mut o = Vec::new();
        assert!(matches!(
            l.handle_auth(&0i32.to_be_bytes(), "u", "p", &mut o),
            Err(LoginError::ScramUnfinished)
        ));
        assert!(matches!(
            l.handle_auth(&3i32.to_be_bytes(), "u", "p", &mut o),
            Err(LoginError::ScramUnfinished)
        ));
        // A server that offers only other mechanisms.
        let mut m = Login::new([1; NONCE_BYTES]);
        let mut other = 10i32.to_be_bytes().to_vec();
        other.extend_from_slice(b"SCRAM-SHA-256-PLUS\0\0");
        assert!(matches!(
            m.handle_auth(&other, "u", "p", &mut o),
            Err(LoginError::NoMechanism)
        ));
    }
}
