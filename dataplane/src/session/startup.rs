//! The client's side of login: SSLRequest, GSSENCRequest, CancelRequest, the startup
//! packet (its parameters checked against an allow-list) and the token as password.
//!
//! What this module must never do: accept a startup parameter that changes how the
//! database reads SQL, or a token over plaintext unless configured.

use super::*;

impl Session {
    pub(super) fn on_startup(&mut self, s: Startup<'_>) {
        let State::Startup { tls } = self.state else {
            return;
        };
        match s {
            Startup::SslRequest if tls => self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: SSLRequest received on an encrypted connection",
            ),
            // "The server then responds with a single byte containing S or N, indicating
            // that it is willing or unwilling to perform SSL, respectively."
            Startup::SslRequest if self.cfg.tls_available => {
                self.to_client.push(b'S');
                self.actions.push_back(Action::StartTls);
            }
            Startup::SslRequest | Startup::GssEncRequest => self.to_client.push(b'N'),
            Startup::Cancel {
                process_id,
                secret_key,
            } => {
                self.actions.push_back(Action::Cancel {
                    process_id,
                    secret_key,
                });
                self.state = State::Closed;
                self.actions.push_back(Action::Close);
            }
            Startup::Startup { minor: _, params } => {
                let user = params.get("user").map(str::to_owned);
                let database = params.get("database").map(str::to_owned);
                // From here on, a refusal is a refused login, and audited as one.
                self.login = Some(Box::new(LoginAttempt {
                    user: user.clone().unwrap_or_default(),
                    database: database.clone().unwrap_or_default(),
                    token: None,
                }));
                let mut forward = Vec::new();
                for (k, v) in params.iter() {
                    match k {
                        "user" | "database" => {}
                        // `options` can carry `-c search_path=…` or `-c role=…`.
                        "options" => {
                            return self.fatal(
                                sqlstate::FEATURE_NOT_SUPPORTED,
                                "pgate: the startup parameter `options` is not allowed (it could set search_path or role); use SET after connecting",
                            );
                        }
                        "replication" => {
                            return self.fatal(
                                sqlstate::FEATURE_NOT_SUPPORTED,
                                "pgate: replication connections are not allowed",
                            );
                        }
                        // Protocol extensions: pgate speaks 3.0 and forwards none.
                        k if k.starts_with("_pq_.") => {}
                        _ => match startup_param_allowed(k, v) {
                            Ok(()) => forward.push((k.to_owned(), v.to_owned())),
                            Err(why) => {
                                let msg = format!("pgate: startup parameter `{k}` {why}");
                                return self.fatal(sqlstate::FEATURE_NOT_SUPPORTED, &msg);
                            }
                        },
                    }
                }
                let Some(user) = user else {
                    return self.fatal(
                        sqlstate::INVALID_AUTHORIZATION,
                        "pgate: no user name in the startup packet",
                    );
                };
                let database = database.unwrap_or_else(|| user.clone());
                if !tls && !self.cfg.allow_plaintext_auth {
                    return self.fatal(
                        sqlstate::INVALID_AUTHORIZATION,
                        "pgate requires TLS: connect with sslmode=require (tokens are never accepted in plaintext)",
                    );
                }
                // AuthenticationCleartextPassword: the token travels as the password.
                self.to_client
                    .extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                self.state = State::AwaitToken {
                    user,
                    database,
                    params: forward,
                };
            }
        }
    }

    pub(super) fn on_token(&mut self, p: &[u8], table: &Table<'_>, auth: &dyn Authenticator) {
        let State::AwaitToken {
            user,
            database,
            params,
        } = std::mem::replace(&mut self.state, State::Startup { tls: false })
        else {
            return;
        };
        // PasswordMessage: "The password (encrypted, if requested)", a String.
        let token = p
            .strip_suffix(&[0])
            .and_then(|t| std::str::from_utf8(t).ok());
        let Some(token) = token else {
            return self.fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "pgate: malformed password message",
            );
        };
        match auth.authenticate(&user, token, table, self.now.unix_ms / 1000) {
            Ok(identity) => {
                self.table_digest_raw = table.digest();
                self.table_digest = digest_hex(&self.table_digest_raw);
                let expiry = identity
                    .expires_at_unix
                    .saturating_add(self.cfg.token_grace_secs);
                self.identity = Some(identity);
                self.login_table_gen = self.table_gen;
                self.set_expiry_deadline(expiry);
                self.state = State::Connecting { database, params };
                self.actions.push_back(Action::ConnectUpstream);
            }
            Err(reason) => {
                if let Some(l) = self.login.as_mut() {
                    l.token = TokenHints::peek(token);
                }
                let msg = format!("pgate: token rejected: {reason}");
                self.fatal(sqlstate::INVALID_PASSWORD, &msg);
            }
        }
    }
}

/// What a token says about itself, read without verifying it: for the audit line of a
/// refused login (which key, which issuer, whom, which token). Each value is bounded and
/// marked unverified where it is written; the token itself is never kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenHints {
    pub kid: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub jti: Option<String>,
}

/// Longest value kept from an unverified token.
const MAX_HINT_CHARS: usize = 128;

impl TokenHints {
    /// The hints of a compact JWS (`header.payload.signature`), if it parses that far.
    pub(crate) fn peek(token: &str) -> Option<TokenHints> {
        use base64::Engine as _;
        let mut parts = token.split('.');
        let (h, p) = (parts.next()?, parts.next()?);
        let decode = |part: &str| -> Option<serde_json::Map<String, serde_json::Value>> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .ok()?;
            match serde_json::from_slice(&bytes) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                _ => None,
            }
        };
        let header = decode(h)?;
        let payload = decode(p).unwrap_or_default();
        let get = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
            m.get(k)
                .and_then(|v| v.as_str())
                .map(|s| s.chars().take(MAX_HINT_CHARS).collect::<String>())
        };
        Some(TokenHints {
            kid: get(&header, "kid"),
            iss: get(&payload, "iss"),
            sub: get(&payload, "sub"),
            jti: get(&payload, "jti"),
        })
    }
}

/// Startup parameters are settings the upstream applies before any statement — outside
/// policy. Only harmless ones pass (what libpq, JDBC, pgbench and tokio-postgres send);
/// settings that change how SQL is lexed (`standard_conforming_strings`, exotic
/// `client_encoding`s) or resolved (`search_path`, `role`, …) would let a client make the
/// classifier read a statement differently from the database, so they are refused.
pub(super) fn startup_param_allowed(name: &str, value: &str) -> Result<(), &'static str> {
    let v = value.to_ascii_lowercase();
    match name.to_ascii_lowercase().as_str() {
        "application_name"
        | "fallback_application_name"
        | "datestyle"
        | "timezone"
        | "intervalstyle"
        | "extra_float_digits"
        | "lc_messages"
        | "lc_monetary"
        | "lc_numeric"
        | "lc_time"
        | "bytea_output"
        | "statement_timeout"
        | "idle_in_transaction_session_timeout"
        | "geqo" => Ok(()),
        "client_encoding" => match v.as_str() {
            "utf8" | "utf-8" | "unicode" | "sql_ascii" => Ok(()),
            _ => Err("must be UTF8 through pgate (other encodings change how SQL is read)"),
        },
        "standard_conforming_strings" => match v.as_str() {
            "on" | "true" | "1" => Ok(()),
            _ => Err("must be on through pgate"),
        },
        _ => Err(
            "is not allowed through pgate (it could change how statements run); set it with SET after connecting if policy allows",
        ),
    }
}

/// The largest startup packet PostgreSQL reads (`MAX_STARTUP_PACKET_LENGTH`).
pub(super) const MAX_STARTUP_BYTES: u32 = 10_000;
/// The largest password message (the token) read before login.
pub(super) const MAX_TOKEN_MESSAGE_BYTES: u32 = 64 * 1024;
