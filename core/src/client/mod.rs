//! The client side of the PostgreSQL protocol's connection phase, written once: the bytes
//! of StartupMessage, SSLRequest and CancelRequest, and the answers to the server's
//! authentication requests ([`Login`]: SCRAM-SHA-256, md5, cleartext, trust). The data
//! plane logs in upstream with it, the load test connects with it, and the tests build
//! their client bytes with it.
//!
//! Sans-IO: writers append to a caller's buffer, [`Login`] reads one Authentication
//! message and writes the answer; randomness (the SCRAM nonce) is passed in.
//!
//! What this module must never do: read a socket, draw randomness of its own, or accept a
//! login the server did not finish proving (see [`login`]).

pub mod login;
pub mod scram;

pub use login::{Login, LoginError, LoginStep, md5_password};
pub use scram::{NONCE_BYTES, SCRAM_SHA_256, ScramClient, ScramError};

use crate::wire::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, PROTOCOL_3_0, SSL_REQUEST_CODE};

/// "StartupMessage (F) Int32 Length … Int32(196608) The protocol version number …
/// String The parameter name … String The parameter value … A zero byte is required as a
/// terminator after the last name/value pair."
pub fn write_startup<'a>(out: &mut Vec<u8>, params: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
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

/// "SSLRequest (F) Int32(8) Length … Int32(80877103) The SSL request code." The server
/// answers with one byte, `S` or `N`.
pub const SSL_REQUEST: [u8; 8] = request(SSL_REQUEST_CODE);

/// "GSSENCRequest (F) Int32(8) Length … Int32(80877104) The GSSAPI Encryption request
/// code."
pub const GSSENC_REQUEST: [u8; 8] = request(GSSENC_REQUEST_CODE);

/// "Terminate (F) Byte1('X') … Int32(4)": the polite end of a session.
pub const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

const fn request(code: u32) -> [u8; 8] {
    let c = code.to_be_bytes();
    [0, 0, 0, 8, c[0], c[1], c[2], c[3]]
}

/// "CancelRequest (F) Int32(16) Length … Int32(80877102) The cancel request code …
/// Int32 The process ID of the target backend. Int32 The secret key for the target
/// backend." (Protocol 3.0's four-byte key.)
pub fn cancel_request(pid: i32, key: i32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&16u32.to_be_bytes());
    m[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    m[8..12].copy_from_slice(&pid.to_be_bytes());
    m[12..].copy_from_slice(&key.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::wire::{Frame, Startup, frame_startup, parse_startup};

    fn parsed(bytes: &[u8]) -> Startup<'_> {
        let f: Frame<'_> = frame_startup(bytes, 1 << 20).unwrap().unwrap();
        assert_eq!(f.len, bytes.len());
        parse_startup(&f).unwrap()
    }

    /// What the client writes, the server side of pgate-core reads back.
    #[test]
    fn requests_read_back_as_written() {
        let mut s = Vec::new();
        write_startup(&mut s, [("user", "alice"), ("database", "app")]);
        match parsed(&s) {
            Startup::Startup { minor: 0, params } => {
                assert_eq!(params.get("user"), Some("alice"));
                assert_eq!(params.get("database"), Some("app"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed(&SSL_REQUEST), Startup::SslRequest);
        assert_eq!(parsed(&GSSENC_REQUEST), Startup::GssEncRequest);
        assert_eq!(
            parsed(&cancel_request(4242, -7)),
            Startup::Cancel {
                process_id: 4242,
                secret_key: -7
            }
        );
    }
}
