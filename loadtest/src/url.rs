//! Targets: `NAME=postgres://user:password@host:port/db?sslmode=…&sslrootcert=…&password_file=…`.
//!
//! This module parses target specifications and reads the password file they may name; it
//! never opens a connection and never prints a password (the `Display` of a target redacts
//! it, so URLs can go into reports).

use std::fmt;
use std::path::PathBuf;

/// Longest password (a JWT with many claims fits easily) and password file we accept.
const MAX_PASSWORD_BYTES: u64 = 64 * 1024;
/// Longest target specification we parse.
const MAX_SPEC_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("target `{0}`: expected NAME=postgres://…")]
    NoName(String),
    #[error("target `{name}`: {why}")]
    Invalid { name: String, why: String },
}

/// How the connection is encrypted, after libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server agrees, plain otherwise (libpq's default).
    Prefer,
    /// TLS, any certificate accepted (libpq's `require` without a root certificate).
    Require,
    /// TLS, certificate chain checked against `sslrootcert` and the host name checked.
    VerifyFull,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub ssl: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Target {
    /// The URL with the password left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ssl = match self.ssl {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        };
        write!(
            f,
            "postgres://{}@{}:{}/{}?sslmode={ssl}",
            self.user, self.host, self.port, self.database
        )?;
        if let Some(p) = &self.root_cert {
            write!(f, "&sslrootcert={}", p.display())?;
        }
        Ok(())
    }
}

/// Parses `NAME=URL`. The password comes from the URL, else from `password_file=`, else from
/// the environment variable `PGATE_LOADTEST_PASSWORD_<NAME>` (`env` is passed in so tests
/// need not touch the process environment).
pub fn parse_target(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, UrlError> {
    if spec.len() > MAX_SPEC_BYTES {
        return Err(UrlError::NoName("(too long)".into()));
    }
    let Some((name, url)) = spec.split_once('=') else {
        return Err(UrlError::NoName(spec.chars().take(40).collect()));
    };
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(UrlError::NoName(name.chars().take(40).collect()));
    }
    let bad = |why: String| UrlError::Invalid {
        name: name.to_string(),
        why,
    };
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| bad("URL must start with postgres:// or postgresql://".into()))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, p),
        None => (before_query, ""),
    };
    // The user info ends at the last `@`: a raw `@` in a password is then still accepted.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, mut password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (decode(u).map_err(bad)?, Some(decode(p).map_err(bad)?)),
            None => (decode(u).map_err(bad)?, None),
        },
        None => (String::new(), None),
    };
    if user.is_empty() {
        return Err(bad("a user name is required".into()));
    }
    let (host, port) = split_host_port(hostport).map_err(bad)?;
    let database = if path.is_empty() {
        user.clone()
    } else {
        decode(path).map_err(bad)?
    };

    let mut ssl = None;
    let mut root_cert = None;
    let mut password_file = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v).map_err(bad)?;
        match k {
            "sslmode" => {
                ssl = Some(match v.as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" | "verify-full" => SslMode::VerifyFull,
                    other => return Err(bad(format!("unknown sslmode `{other}`"))),
                })
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(v)),
            "password_file" => password_file = Some(PathBuf::from(v)),
            other => {
                return Err(bad(format!(
                    "unknown URL parameter `{other}` (supported: sslmode, sslrootcert, password_file)"
                )));
            }
        }
    }
    // As libpq: a root certificate turns `require` (and the default) into a verified
    // connection; verify-* without one is an error rather than a silent downgrade.
    let ssl = match (ssl.unwrap_or(SslMode::Prefer), &root_cert) {
        (SslMode::Disable, _) => SslMode::Disable,
        (_, Some(_)) => SslMode::VerifyFull,
        (SslMode::VerifyFull, None) => {
            return Err(bad("sslmode=verify-* needs sslrootcert=".into()));
        }
        (m, None) => m,
    };

    if password.is_none() {
        if let Some(path) = password_file {
            password = Some(read_password_file(&path).map_err(bad)?);
        } else {
            let var = format!("PGATE_LOADTEST_PASSWORD_{}", env_suffix(name));
            password = env(&var);
        }
    }
    if let Some(p) = &password
        && p.len() as u64 > MAX_PASSWORD_BYTES
    {
        return Err(bad("password longer than 64 KiB".into()));
    }
    Ok(Target {
        name: name.to_string(),
        user,
        password,
        host,
        port,
        database,
        ssl,
        root_cert,
    })
}

/// `direct` → `DIRECT`, `pgate-policies` → `PGATE_POLICIES`.
pub fn env_suffix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("password_file {}: {e}", path.display()))?;
    let mut s = String::new();
    f.take(MAX_PASSWORD_BYTES + 1)
        .read_to_string(&mut s)
        .map_err(|e| format!("password_file {}: {e}", path.display()))?;
    if s.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(format!(
            "password_file {}: longer than 64 KiB",
            path.display()
        ));
    }
    // Files written by `echo` end in a newline that is not part of the password.
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed `[` in host".to_string())?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    let host = decode(&host)?;
    if host.is_empty() {
        return Err("a host is required".into());
    }
    let port = match port {
        None | Some("") => 5432,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port `{p}` is not between 1 and 65535"))?,
    };
    Ok((host, port))
}

/// Percent-decoding (`%2B` → `+`); the result must be UTF-8.
pub fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad percent-escape in URL".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL component is not UTF-8 after decoding".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_full_urls() {
        let t = parse_target(
            "pgate=postgres://bench:a%2Bb%3D.c@127.0.0.1:6432/bench?sslmode=require",
            &no_env,
        )
        .unwrap();
        assert_eq!(t.user, "bench");
        assert_eq!(t.password.as_deref(), Some("a+b=.c"));
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 6432));
        assert_eq!(t.database, "bench");
        assert_eq!(t.ssl, SslMode::Require);
        assert!(!t.to_string().contains("a+b"), "password is redacted");

        let t = parse_target("d=postgresql://u@[::1]/?sslrootcert=/ca.crt", &no_env).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 5432));
        assert_eq!(t.database, "u");
        assert_eq!(t.ssl, SslMode::VerifyFull);
    }

    #[test]
    fn password_from_env_when_absent() {
        let env = |k: &str| (k == "PGATE_LOADTEST_PASSWORD_PGATE_POL").then(|| "tok".to_string());
        let t = parse_target("pgate-pol=postgres://u@h:1/d", &env).unwrap();
        assert_eq!(t.password.as_deref(), Some("tok"));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "postgres://u@h/d",
            "x=http://u@h/d",
            "x=postgres://@h/d",
            "x=postgres://u@h:0/d",
            "x=postgres://u@h:99999/d",
            "x=postgres://u@h/d?sslmode=verify-full",
            "x=postgres://u@h/d?nope=1",
            "x=postgres://u:%zz@h/d",
            "x=postgres://u@:5/d",
        ] {
            assert!(parse_target(bad, &no_env).is_err(), "{bad}");
        }
    }
}
