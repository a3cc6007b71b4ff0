//! The upstream's side of login: pgate authenticates to PostgreSQL with its own
//! credential (SCRAM-SHA-256, md5, cleartext or trust) and relays the startup answers,
//! replacing the real cancel key with the one pgate issued.
//!
//! What this module must never do: let the client see the upstream credential, its error
//! text or the real cancel key, or accept a login the server did not finish proving.

use super::*;

impl Session {
    pub(super) fn on_upstream_auth(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'R' => {
                let mut r = wire::Reader::new(body, "Authentication");
                let Ok(code) = r.i32() else {
                    return self.fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "pgate: malformed authentication request from the database",
                    );
                };
                let password = self.cfg.upstream_password.clone().unwrap_or_default();
                match code {
                    // Once SCRAM began, only its completion (the server proving it knows
                    // the password) admits AuthenticationOk, and no weaker method may
                    // follow: a man in the middle could otherwise downgrade the login.
                    0 | 3 | 5
                        if matches!(&self.state, State::UpstreamAuth { scram: Some(s) } if code != 0 || !s.is_done()) =>
                    {
                        self.fatal(
                            sqlstate::CONNECTION_FAILURE,
                            "pgate: the database left SCRAM authentication unfinished (see pgate's log)",
                        )
                    }
                    0 => {
                        self.state = State::UpstreamStartup {
                            auth_ok_sent: false,
                        }
                    }
                    3 => {
                        let mut p = password.into_bytes();
                        p.push(0);
                        wire::write_message(&mut self.to_upstream, b'p', &p);
                    }
                    5 => {
                        let Ok(salt) = r.bytes(4) else {
                            return self.fatal(
                                sqlstate::PROTOCOL_VIOLATION,
                                "pgate: malformed md5 request from the database",
                            );
                        };
                        let mut h = postgres_protocol::authentication::md5_hash(
                            self.cfg.upstream_user.as_bytes(),
                            password.as_bytes(),
                            [salt[0], salt[1], salt[2], salt[3]],
                        )
                        .into_bytes();
                        h.push(0);
                        wire::write_message(&mut self.to_upstream, b'p', &h);
                    }
                    10 => {
                        // AuthenticationSASL: the mechanisms the server accepts.
                        let mut has_scram = false;
                        while let Ok(m) = r.cstr() {
                            if m.is_empty() {
                                break;
                            }
                            has_scram |= m == SCRAM_SHA_256;
                        }
                        if !has_scram {
                            return self.fatal(
                                sqlstate::CONNECTION_FAILURE,
                                "pgate: the database offers no SASL mechanism pgate supports (SCRAM-SHA-256)",
                            );
                        }
                        let scram = ScramClient::new(&password, &self.scram_nonce);
                        // SASLInitialResponse: mechanism, Int32 length, initial response.
                        let first = scram.client_first();
                        let mut b = Vec::with_capacity(first.len() + 32);
                        b.extend_from_slice(SCRAM_SHA_256.as_bytes());
                        b.push(0);
                        b.extend_from_slice(&(first.len() as i32).to_be_bytes());
                        b.extend_from_slice(&first);
                        wire::write_message(&mut self.to_upstream, b'p', &b);
                        self.state = State::UpstreamAuth {
                            scram: Some(Box::new(scram)),
                        };
                    }
                    11 | 12 => {
                        let State::UpstreamAuth { scram: Some(scram) } = &mut self.state else {
                            return self.fatal(
                                sqlstate::PROTOCOL_VIOLATION,
                                "pgate: SASL message from the database out of order",
                            );
                        };
                        let data = r.rest();
                        let res = if code == 11 {
                            scram.handle_server_first(data).map(Some)
                        } else {
                            scram.handle_server_final(data).map(|()| None)
                        };
                        match res {
                            Ok(Some(m)) => {
                                wire::write_message(&mut self.to_upstream, b'p', &m);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                let msg = format!(
                                    "pgate: SCRAM authentication with the database failed: {e}"
                                );
                                self.fatal(sqlstate::CONNECTION_FAILURE, &msg);
                            }
                        }
                    }
                    other => {
                        let msg = format!(
                            "pgate: the database asked for an authentication method pgate does not support (code {other})"
                        );
                        self.fatal(sqlstate::CONNECTION_FAILURE, &msg)
                    }
                }
            }
            // The upstream's own error may name the upstream user: the client gets a
            // generic message, the operator's log the detail (driver).
            b'E' => self.fatal(
                sqlstate::CONNECTION_FAILURE,
                "pgate could not authenticate to the database (see pgate's log)",
            ),
            b'N' => {}
            _ => self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: unexpected message from the database during authentication",
            ),
        }
    }

    pub(super) fn on_upstream_startup(&mut self, tag: u8, body: &[u8], raw: &[u8]) {
        let State::UpstreamStartup { auth_ok_sent } = &mut self.state else {
            return;
        };
        if !*auth_ok_sent && matches!(tag, b'S' | b'N' | b'K' | b'Z') {
            *auth_ok_sent = true;
            self.to_client
                .extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
        }
        match tag {
            b'S' => {
                // "is_superuser" is reported at startup (ParameterStatus).
                let mut r = wire::Reader::new(body, "ParameterStatus");
                match (r.cstr(), r.cstr()) {
                    (Ok("is_superuser"), Ok(v)) => self.upstream_superuser = v == "on",
                    // pgate reads identifiers and literals as UTF-8; a database in another
                    // encoding reads the same bytes differently (LATIN1 folds non-ASCII
                    // letters in identifiers).
                    (Ok("server_encoding"), Ok(v)) if !v.eq_ignore_ascii_case("UTF8") => {
                        let msg = format!(
                            "pgate: the database's encoding is {v}; pgate supports only UTF8 databases"
                        );
                        return self.fatal(sqlstate::FEATURE_NOT_SUPPORTED, &msg);
                    }
                    _ => {}
                }
                self.to_client.extend_from_slice(raw);
            }
            b'N' => self.to_client.extend_from_slice(raw),
            b'K' => {
                let mut r = wire::Reader::new(body, "BackendKeyData");
                if let (Ok(pid), Ok(key)) = (r.i32(), r.i32()) {
                    self.keys.upstream = Some((pid, key));
                }
                // The client gets pgate's key, never the real one.
                let (pid, key) = self.keys.issued;
                let mut k = [0u8; 8];
                k[..4].copy_from_slice(&pid.to_be_bytes());
                k[4..].copy_from_slice(&key.to_be_bytes());
                wire::write_message(&mut self.to_client, b'K', &k);
            }
            b'Z' => {
                self.tx_status = body.first().copied().unwrap_or(b'I');
                self.to_client.extend_from_slice(raw);
                self.state = State::Ready;
                // The classifier's buffers, allocated once, now that statements will come.
                self.facts = Facts::default();
                self.audit_connection("open", None);
            }
            b'E' => self.fatal(
                sqlstate::CONNECTION_FAILURE,
                "pgate: the database refused the session (see pgate's log)",
            ),
            _ => self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: unexpected message from the database during startup",
            ),
        }
    }
}
