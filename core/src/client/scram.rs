//! The SCRAM-SHA-256 client (RFC 5802 with RFC 7677's hash,
//! no channel binding), sans-IO and with the client nonce passed in, so a simulation can
//! replay an exchange byte for byte. PostgreSQL: "The client sends the client-first
//! message … The username that is sent is ignored by the server (the startup packet's is
//! used), so it is sent empty."
//!
//! What this module must never do: accept a server that does not prove it knows the
//! password (the final message's `v=` is checked), or draw randomness of its own.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Bytes of client nonce (base64-encoded on the wire: 24 printable characters).
pub const NONCE_BYTES: usize = 18;

/// The mechanism name in AuthenticationSASL / SASLInitialResponse.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Why an exchange failed; shown to the operator, never to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("the server's first message is malformed ({0})")]
    BadServerFirst(&'static str),
    #[error("the server's nonce does not extend pgate's")]
    NonceMismatch,
    #[error("the server asked for {0} PBKDF2 iterations (allowed: 1 to 10000000)")]
    Iterations(u32),
    #[error("the server rejected the login: {0}")]
    ServerError(String),
    #[error("the server's signature is wrong: it does not know the password")]
    BadServerSignature,
    #[error("message out of order")]
    OutOfOrder,
}

enum Step {
    AwaitServerFirst,
    AwaitServerFinal { server_signature: [u8; 32] },
    Done,
}

pub struct ScramClient {
    password: Vec<u8>,
    client_first: String,
    step: Step,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 with one output block (RFC 5802 "Hi").
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut s = salt.to_vec();
    s.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &s);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

impl ScramClient {
    /// Starts an exchange for `password` with the client nonce `nonce` (random bytes from
    /// the driver's source).
    pub fn new(password: &str, nonce: &[u8; NONCE_BYTES]) -> Self {
        // SASLprep the password; PostgreSQL uses a password it cannot normalise as it is.
        let password = match stringprep::saslprep(password) {
            Ok(p) => p.into_owned().into_bytes(),
            Err(_) => password.as_bytes().to_vec(),
        };
        ScramClient {
            password,
            client_first: format!("n=,r={}", STANDARD.encode(nonce)),
            step: Step::AwaitServerFirst,
        }
    }

    /// Whether the server proved it knows the password (server-final verified).
    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// The client-first message (GS2 header `n,,`: no channel binding).
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first).into_bytes()
    }

    /// Reads server-first (`r=…,s=…,i=…`); returns client-final with the proof.
    pub fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.step, Step::AwaitServerFirst) {
            return Err(ScramError::OutOfOrder);
        }
        let text = std::str::from_utf8(msg).map_err(|_| ScramError::BadServerFirst("not UTF-8"))?;
        let mut parts = text.split(',');
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramError::BadServerFirst("no nonce"))?;
        let salt = parts
            .next()
            .and_then(|p| p.strip_prefix("s="))
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or(ScramError::BadServerFirst("no salt"))?;
        let iterations: u32 = parts
            .next()
            .and_then(|p| p.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or(ScramError::BadServerFirst("no iteration count"))?;
        let ours = self.client_first.get(5..).unwrap_or("");
        if !nonce.starts_with(ours) || nonce.len() == ours.len() {
            return Err(ScramError::NonceMismatch);
        }
        // A bound on the work a server can make pgate do per login (PostgreSQL 16's
        // `scram_iterations` may be as low as 1).
        if !(1..=10_000_000).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let salted = hi(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = hmac(&salted, b"Server Key");
        self.step = Step::AwaitServerFinal {
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Reads server-final (`v=…` or `e=…`): the server proves it knows the password.
    pub fn handle_server_final(&mut self, msg: &[u8]) -> Result<(), ScramError> {
        let Step::AwaitServerFinal { server_signature } = self.step else {
            return Err(ScramError::OutOfOrder);
        };
        let text = std::str::from_utf8(msg).map_err(|_| ScramError::BadServerSignature)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let v = text
            .split(',')
            .next()
            .and_then(|p| p.strip_prefix("v="))
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or(ScramError::BadServerSignature)?;
        // Not secret-dependent timing: the expected value is the server's to compute too.
        if v != server_signature {
            return Err(ScramError::BadServerSignature);
        }
        self.step = Step::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 7677 §3's example: user "user", password "pencil", client nonce
    /// "rOprNGfwEbeRWgbNEkqO", 4096 iterations. (pgate sends `n=` empty, as PostgreSQL
    /// expects, so the exchange is recomputed with that bare message; the RFC's own
    /// message is checked through `hi` and the keys.)
    #[test]
    fn rfc7677_keys_and_a_full_exchange() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = hi(b"pencil", &salt, 4096);
        let client_key = hmac(&salted, b"Client Key");
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = hmac(&stored, auth.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(sig) {
            *p ^= s;
        }
        assert_eq!(
            STANDARD.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_sig = hmac(&hmac(&salted, b"Server Key"), auth.as_bytes());
        assert_eq!(
            STANDARD.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn exchange_is_deterministic_for_a_given_nonce_and_checks_the_server() {
        let nonce = [7u8; NONCE_BYTES];
        let mut a = ScramClient::new("secret", &nonce);
        let mut b = ScramClient::new("secret", &nonce);
        assert_eq!(a.client_first(), b.client_first());
        let cn = STANDARD.encode(nonce);
        let first = format!("r={cn}SERVER,s={},i=4096", STANDARD.encode(b"salt"));
        let fa = a.handle_server_first(first.as_bytes()).unwrap();
        assert_eq!(fa, b.handle_server_first(first.as_bytes()).unwrap());
        // A server that does not know the password cannot finish.
        assert_eq!(
            a.handle_server_final(b"v=AAAA"),
            Err(ScramError::BadServerSignature)
        );
        // A nonce that does not extend ours is refused before any work.
        let mut c = ScramClient::new("secret", &nonce);
        let bad = format!("r=other,s={},i=4096", STANDARD.encode(b"salt"));
        assert_eq!(
            c.handle_server_first(bad.as_bytes()),
            Err(ScramError::NonceMismatch)
        );
        let mut d = ScramClient::new("secret", &nonce);
        let costly = format!("r={cn}x,s={},i=100000000", STANDARD.encode(b"salt"));
        assert_eq!(
            d.handle_server_first(costly.as_bytes()),
            Err(ScramError::Iterations(100_000_000))
        );
    }
}
