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
                let State::UpstreamAuth { login } = &mut self.state else {
                    return;
                };
                let password = self.cfg.upstream_password.as_deref().unwrap_or_default();
                match login.handle_auth(
                    body,
                    &self.cfg.upstream_user,
                    password,
                    &mut self.to_upstream,
                ) {
                    Ok(LoginStep::Continue) => {}
                    Ok(LoginStep::Authenticated) => {
                        self.state = State::UpstreamStartup {
                            auth_ok_sent: false,
                        }
                    }
                    Err(e @ LoginError::Malformed(_)) => {
                        let msg = format!("pgate: {e}");
                        self.fatal(sqlstate::PROTOCOL_VIOLATION, &msg)
                    }
                    Err(e @ LoginError::ScramUnfinished) => {
                        let msg = format!("pgate: {e} (see pgate's log)");
                        self.fatal(sqlstate::CONNECTION_FAILURE, &msg)
                    }
                    Err(e) => {
                        let msg = format!("pgate: {e}");
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
                note_parameter(&mut self.upstream_params, body);
                self.to_client.extend_from_slice(raw);
            }
            b'N' => self.to_client.extend_from_slice(raw),
            b'K' => {
                let mut r = wire::Reader::new(body, "BackendKeyData");
                if let (Ok(pid), Ok(key)) = (r.i32(), r.i32()) {
                    self.keys.upstream = Some((pid, key));
                }
                self.send_issued_key();
            }
            b'Z' => {
                self.to_client.extend_from_slice(raw);
                self.enter_ready(body.first().copied().unwrap_or(b'I'));
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

    /// BackendKeyData for the client: pgate's key, never the real one.
    pub(super) fn send_issued_key(&mut self) {
        let (pid, key) = self.keys.issued;
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&pid.to_be_bytes());
        k[4..].copy_from_slice(&key.to_be_bytes());
        wire::write_message(&mut self.to_client, b'K', &k);
    }

    /// Logged in both ways: statements may come.
    pub(super) fn enter_ready(&mut self, tx_status: u8) {
        self.ready.tx_status = tx_status;
        self.state = State::Ready;
        self.audit_connection("open", None);
    }
}
