//! The PROXY protocol, version 2 (HAProxy's `proxy-protocol.txt`, §2.2): the header a TCP
//! load balancer writes before the client's bytes, naming the client's address. Read only
//! from the configured trusted sources (`proxy-protocol trusted=…`); from anyone else the
//! bytes would be a forged address.
//!
//! A borrowed view, parsed once: [`parse`] says how many bytes the header takes and what
//! it names. Version 1 (the text form) is not read.
//!
//! What this module must never do: accept a header that is malformed or larger than
//! [`MAX_HEADER_BYTES`], or invent an address (LOCAL and UNSPEC mean "the connection's own
//! peer", which the caller keeps).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A": the 12-byte signature.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The largest header accepted: 16 bytes, the IPv6 addresses (36) and room for TLVs.
pub const MAX_HEADER_BYTES: usize = 16 + 512;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// PROXY over TCP: the client's address as the load balancer saw it.
    Client(SocketAddr),
    /// LOCAL: the balancer's own connection (a health check); the connection's peer
    /// stands.
    Peer,
}

/// Why the bytes are not a header pgate takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("no PROXY protocol v2 signature")]
    Signature,
    #[error("PROXY protocol version {0} (only 2 is read)")]
    Version(u8),
    #[error("PROXY protocol command {0} is neither LOCAL nor PROXY")]
    Command(u8),
    #[error("PROXY protocol header of {0} bytes (at most {MAX_HEADER_BYTES})")]
    TooLong(usize),
    #[error("PROXY protocol address block too short for its family")]
    Short,
    #[error("PROXY protocol transport is not a stream (TCP)")]
    NotStream,
    #[error("PROXY protocol address family or transport {0:#04x} is not defined")]
    Family(u8),
    #[error("PROXY protocol header names no client address (UNSPEC or UNIX)")]
    NoAddress,
}

/// `Ok(None)`: more bytes are needed. `Ok(Some((n, source)))`: the header is the first `n`
/// bytes.
pub fn parse(input: &[u8]) -> Result<Option<(usize, Source)>, Malformed> {
    let have = input.len().min(SIGNATURE.len());
    if input[..have] != SIGNATURE[..have] {
        return Err(Malformed::Signature);
    }
    let Some(head) = input.get(..16) else {
        return Ok(None);
    };
    // "The 13th byte is the protocol version and command": high nibble 2, low nibble 0
    // LOCAL or 1 PROXY.
    let (version, command) = (head[12] >> 4, head[12] & 0x0f);
    if version != 2 {
        return Err(Malformed::Version(version));
    }
    if command > 1 {
        return Err(Malformed::Command(command));
    }
    // "The 14th byte contains the transport protocol and address family": high nibble the
    // family (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX), low nibble the transport (1 STREAM).
    let (family, transport) = (head[13] >> 4, head[13] & 0x0f);
    // "Other values are unspecified and must not be emitted … must be rejected as invalid."
    if family > 3 || transport > 2 {
        return Err(Malformed::Family(head[13]));
    }
    // "The 15th and 16th bytes is the address length in bytes in network endian order."
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    let total = 16 + len;
    if total > MAX_HEADER_BYTES {
        return Err(Malformed::TooLong(total));
    }
    let Some(block) = input.get(16..total) else {
        return Ok(None);
    };
    if command == 0 {
        // LOCAL: "the receiver must accept this connection as valid and must use the real
        // connection endpoints and discard the protocol block including the family".
        return Ok(Some((total, Source::Peer)));
    }
    let addr = match family {
        1 => {
            let b: &[u8; 12] = block
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(Malformed::Short)?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[8], b[9]]),
            ))
        }
        2 => {
            let b: &[u8; 36] = block
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(Malformed::Short)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([b[32], b[33]]),
            ))
        }
        _ => None,
    };
    match addr {
        Some(a) if transport == 1 => Ok(Some((total, Source::Client(a)))),
        Some(_) => Err(Malformed::NotStream),
        // PROXY without an address pgate could count or audit: refused, not taken as the
        // balancer itself.
        None => Err(Malformed::NoAddress),
    }
}

/// A header for `client` (PROXY over TCP), as a load balancer writes it: for tests and the
/// load test.
pub fn encode(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (client, server) {
        (SocketAddr::V4(c), SocketAddr::V4(s)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&c.ip().octets());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&c.port().to_be_bytes());
            out.extend_from_slice(&s.port().to_be_bytes());
        }
        (c, s) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(c).octets());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&c.port().to_be_bytes());
            out.extend_from_slice(&s.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_header_names_the_client_and_its_length_byte_by_byte() {
        for client in ["203.0.113.7:51234", "[2001:db8::7]:443"] {
            let client = addr(client);
            let server = if client.is_ipv4() {
                addr("10.0.0.1:5432")
            } else {
                addr("[2001:db8::1]:5432")
            };
            let mut h = encode(client, server);
            let n = h.len();
            // Every prefix is "more, please", never an error.
            for cut in 0..n {
                assert_eq!(parse(&h[..cut]), Ok(None), "{cut}");
            }
            h.extend_from_slice(b"\0\0\0\x08\x04\xd2\x16\x2f");
            assert_eq!(parse(&h), Ok(Some((n, Source::Client(client)))));
        }
    }

    fn base_local() -> Vec<u8> {
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        local
    }

    #[test]
    fn local_keeps_the_peer_and_tlvs_are_skipped() {
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local), Ok(Some((16, Source::Peer))));
        // PROXY, INET, with a 3-byte TLV after the addresses.
        let mut h = encode(addr("192.0.2.1:1000"), addr("192.0.2.2:5432"));
        h[15] += 3;
        h.extend_from_slice(&[0x04, 0, 0]);
        assert_eq!(
            parse(&h),
            Ok(Some((31, Source::Client(addr("192.0.2.1:1000")))))
        );
        let mut unspec = SIGNATURE.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0, 0]);
        assert_eq!(parse(&unspec), Err(Malformed::NoAddress));
        // LOCAL with any defined family is still the balancer's own connection.
        let mut local_inet = base_local();
        local_inet[13] = 0x11;
        assert_eq!(parse(&local_inet), Ok(Some((16, Source::Peer))));
    }

    #[test]
    fn anything_else_is_refused_by_cause() {
        assert_eq!(
            parse(b"\0\0\0\x08\x04\xd2\x16\x2f"),
            Err(Malformed::Signature)
        );
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Err(Malformed::Signature));
        let base = encode(addr("192.0.2.1:1000"), addr("192.0.2.2:5432"));
        let with = |i: usize, v: u8| {
            let mut h = base.clone();
            h[i] = v;
            parse(&h)
        };
        assert_eq!(with(12, 0x11), Err(Malformed::Version(1)));
        assert_eq!(with(12, 0x22), Err(Malformed::Command(2)));
        assert_eq!(with(13, 0x12), Err(Malformed::NotStream));
        assert_eq!(with(13, 0x41), Err(Malformed::Family(0x41)));
        assert_eq!(with(13, 0x13), Err(Malformed::Family(0x13)));
        assert_eq!(with(15, 4), Err(Malformed::Short));
        let mut long = base.clone();
        long[14] = 0x10;
        assert_eq!(parse(&long), Err(Malformed::TooLong(16 + 0x1000 + 12)));
    }
}
