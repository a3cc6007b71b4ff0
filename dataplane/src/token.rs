//! Token tooling behind `pgate token …`: a local ES256 signing key with its JWKS
//! ([`init_keys`]), and minting tokens with it ([`mint`]) — for development, tests and
//! deployments without an OIDC provider.
//!
//! What it must never do: overwrite an existing key or JWKS; write the private key readable by
//! anyone but its owner (it is created with mode 0600); print, log or put into an error any
//! private key material; or let a `--claim` override the claims it sets itself (`iss`, `aud`,
//! `sub`, `exp`, `nbf`, `iat`, `act`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// File name of the private key [`init_keys`] writes.
pub const SIGNING_KEY_FILE: &str = "signing-key.pem";
/// File name of the JWKS [`init_keys`] writes.
pub const JWKS_FILE: &str = "jwks.json";
/// Claims [`mint`] sets itself.
pub const RESERVED_CLAIMS: &[&str] = &["iss", "aud", "sub", "exp", "nbf", "iat", "act"];

/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum TokenToolError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists: not overwriting it", .0.display())]
    Exists(PathBuf),
    #[error("{}: not a PKCS#8 EC P-256 private key", .0.display())]
    BadKey(PathBuf),
    #[error("cannot encode the key: {0}")]
    KeyEncoding(String),
    #[error("cannot sign the token: {0}")]
    Sign(String),
    #[error("claim `{0}` is set by pgate itself")]
    ReservedClaim(String),
    #[error("claim {0:?} is not NAME=VALUE")]
    BadClaim(String),
    #[error("subject is empty")]
    EmptySubject,
    #[error("actor is empty")]
    EmptyActor,
    #[error("time to live must be positive")]
    ZeroTtl,
    #[error("time to live is too long")]
    TtlOverflow,
    #[error("invalid duration {0:?} (examples: 90s, 15m, 1h, 2d)")]
    BadDuration(String),
}

/// What [`init_keys`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitKeys {
    pub key_path: PathBuf,
    pub jwks_path: PathBuf,
    pub kid: String,
}

/// The key id pgate derives for an EC P-256 public key: the first 16 characters of its
/// RFC 7638 JWK thumbprint (SHA-256, base64url).
pub fn p256_kid(public: &p256::PublicKey) -> String {
    let (x, y) = p256_coordinates(public);
    // RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let mut thumb = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    thumb.truncate(16);
    thumb
}

/// base64url x and y of a P-256 public key.
fn p256_coordinates(public: &p256::PublicKey) -> (String, String) {
    let point = public.to_encoded_point(false);
    let enc =
        |c: Option<&p256::FieldBytes>| c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
    (enc(point.x()), enc(point.y()))
}

/// The public JWK (ES256, `use` sig) of a P-256 key, with the derived kid.
pub fn p256_jwk(public: &p256::PublicKey) -> Value {
    let (x, y) = p256_coordinates(public);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "kid": p256_kid(public),
        "alg": "ES256",
        "use": "sig",
    })
}

/// Generates an EC P-256 key pair in `dir` (created if missing, mode 0700): the PKCS#8
/// private key in `signing-key.pem` (mode 0600) and its public JWK in `jwks.json`. Refuses if
/// either file exists.
pub fn init_keys(dir: &Path) -> Result<InitKeys, TokenToolError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TokenToolError::Io { path, source }
    };
    let key_path = dir.join(SIGNING_KEY_FILE);
    let jwks_path = dir.join(JWKS_FILE);
    for p in [&key_path, &jwks_path] {
        if p.exists() {
            return Err(TokenToolError::Exists(p.clone()));
        }
    }
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io(dir))?;
    }

    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| TokenToolError::KeyEncoding(e.to_string()))?;
    let public = secret.public_key();
    let jwks = json!({ "keys": [p256_jwk(&public)] });
    let mut jwks_text = serde_json::to_string_pretty(&jwks)
        .map_err(|e| TokenToolError::KeyEncoding(e.to_string()))?;
    jwks_text.push('\n');

    write_new(&key_path, pem.as_bytes(), 0o600).map_err(io(&key_path))?;
    write_new(&jwks_path, jwks_text.as_bytes(), 0o644).map_err(io(&jwks_path))?;
    Ok(InitKeys {
        key_path,
        jwks_path,
        kid: p256_kid(&public),
    })
}

/// Creates `path` (failing if it exists) with `mode` from the start, so the content is never
/// readable with looser permissions.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What to mint.
#[derive(Clone, Debug, PartialEq)]
pub struct MintArgs {
    /// A PKCS#8 EC P-256 private key (as written by [`init_keys`]).
    pub key_path: PathBuf,
    /// Header `kid`; default: derived from the key as [`init_keys`] does.
    pub kid: Option<String>,
    pub sub: String,
    /// Further claims (e.g. `groups`, `client_id`); none of [`RESERVED_CLAIMS`].
    pub claims: Vec<(String, Value)>,
    /// The delegation chain, outermost (current) actor first.
    pub act: Vec<String>,
    pub ttl_secs: u64,
    pub issuer: String,
    pub audience: String,
    /// Issue time (`iat`); `exp` is `now_unix + ttl_secs`.
    pub now_unix: u64,
}

/// RFC 8705 §3.1: `{"x5t#S256": base64url(SHA-256(DER))}` of the first certificate in
/// the PEM file `cert`.
pub fn cnf_for_cert(cert: &Path) -> Result<Value, String> {
    use base64::Engine as _;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: cannot read the certificate: {e}", cert.display()))?
        .next()
        .ok_or_else(|| format!("{}: no certificate found", cert.display()))?
        .map_err(|e| format!("{}: bad certificate PEM: {e}", cert.display()))?;
    let t = crate::tls::thumbprint(&der);
    Ok(serde_json::json!({
        "x5t#S256": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t)
    }))
}

/// 128 random bits, hex.
fn random_jti() -> String {
    use rand_core::{OsRng, RngCore};
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Signs a token (ES256) and returns it in compact form, with a random `jti` unless
/// `claims` gives one.
pub fn mint(args: &MintArgs) -> Result<String, TokenToolError> {
    if args.sub.is_empty() {
        return Err(TokenToolError::EmptySubject);
    }
    if args.ttl_secs == 0 {
        return Err(TokenToolError::ZeroTtl);
    }
    if args.act.iter().any(String::is_empty) {
        return Err(TokenToolError::EmptyActor);
    }
    if let Some((name, _)) = args
        .claims
        .iter()
        .find(|(n, _)| RESERVED_CLAIMS.contains(&n.as_str()))
    {
        return Err(TokenToolError::ReservedClaim(name.clone()));
    }
    let exp = args
        .now_unix
        .checked_add(args.ttl_secs)
        .ok_or(TokenToolError::TtlOverflow)?;

    crate::identity::install_crypto_provider();
    let secret = read_signing_key(&args.key_path)?;
    let der = secret
        .to_pkcs8_der()
        .map_err(|e| TokenToolError::KeyEncoding(e.to_string()))?;
    let key = EncodingKey::from_ec_der(der.as_bytes());
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(
        args.kid
            .clone()
            .unwrap_or_else(|| p256_kid(&secret.public_key())),
    );

    let mut claims = Map::new();
    claims.insert("iss".into(), args.issuer.clone().into());
    claims.insert("aud".into(), args.audience.clone().into());
    claims.insert("sub".into(), args.sub.clone().into());
    claims.insert("iat".into(), args.now_unix.into());
    claims.insert("exp".into(), exp.into());
    // A token id (RFC 7519 §4.1.7) unless one is given: what `token sessions=` counts.
    claims.insert("jti".into(), random_jti().into());
    for (name, value) in &args.claims {
        claims.insert(name.clone(), value.clone());
    }
    // Innermost (earliest) actor first, wrapping outward.
    let mut act: Option<Value> = None;
    for actor in args.act.iter().rev() {
        let mut o = Map::new();
        o.insert("sub".into(), actor.clone().into());
        if let Some(inner) = act.take() {
            o.insert("act".into(), inner);
        }
        act = Some(Value::Object(o));
    }
    if let Some(act) = act {
        claims.insert("act".into(), act);
    }
    jsonwebtoken::encode(&header, &Value::Object(claims), &key)
        .map_err(|e| TokenToolError::Sign(e.to_string()))
}

fn read_signing_key(path: &Path) -> Result<p256::SecretKey, TokenToolError> {
    let io = |source| TokenToolError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(TokenToolError::BadKey(path.to_path_buf()));
    }
    let text = zeroize_string(std::fs::read_to_string(path).map_err(io)?);
    p256::SecretKey::from_pkcs8_pem(&text).map_err(|_| TokenToolError::BadKey(path.to_path_buf()))
}

fn zeroize_string(s: String) -> p256::elliptic_curve::zeroize::Zeroizing<String> {
    p256::elliptic_curve::zeroize::Zeroizing::new(s)
}

/// Parses a `--claim NAME=VALUE`: VALUE is JSON if it parses as JSON (`["a","b"]`, `7`,
/// `true`, `"quoted"`), otherwise the string as written.
pub fn parse_claim(s: &str) -> Result<(String, Value), TokenToolError> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(TokenToolError::BadClaim(s.to_string()));
    };
    if name.is_empty() {
        return Err(TokenToolError::BadClaim(s.to_string()));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((name.to_string(), value))
}

/// Parses a duration: `3600` or `3600s`, `15m`, `1h`, `2d`, and combinations like `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, TokenToolError> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|_| TokenToolError::BadDuration(s.to_string()))
}

// ---------------------------------------------------------------- command line

/// `pgate token …`
#[derive(Clone, Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an ES256 signing key (signing-key.pem, mode 0600) and its JWKS (jwks.json).
    InitKeys {
        /// Directory to write them to (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Mint a token signed with a key from `init-keys`; prints it on stdout.
    Mint {
        /// The private key (PKCS#8 EC P-256 PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Header `kid` (default: derived from the key, as `init-keys` does).
        #[arg(long)]
        kid: Option<String>,
        /// The subject (`sub`).
        #[arg(long)]
        sub: String,
        /// A further claim; VALUE is JSON if it parses as JSON, else a string. Repeatable.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// An actor of the delegation chain (`act`), outermost (current) first. Repeatable.
        #[arg(long = "act", value_name = "SUBJECT")]
        act: Vec<String>,
        /// Time to live (e.g. 90s, 15m, 1h, 2d).
        #[arg(long, default_value = "15m")]
        ttl: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
    },
}

/// Runs `pgate token …`; the error is one line for stderr.
pub fn run_cli(args: &TokenArgs) -> Result<(), String> {
    match &args.command {
        TokenCommand::InitKeys { dir } => {
            let k = init_keys(dir).map_err(|e| e.to_string())?;
            println!("private key: {}", k.key_path.display());
            println!("JWKS:        {}", k.jwks_path.display());
            println!("key id:      {}", k.kid);
            Ok(())
        }
        TokenCommand::Mint {
            key,
            kid,
            sub,
            claims,
            act,
            ttl,
            issuer,
            audience,
        } => {
            let claims = claims
                .iter()
                .map(|c| parse_claim(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let ttl = parse_duration(ttl).map_err(|e| e.to_string())?;
            let now_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| "the system clock is before 1970".to_string())?
                .as_secs();
            let token = mint(&MintArgs {
                key_path: key.clone(),
                kid: kid.clone(),
                sub: sub.clone(),
                claims,
                act: act.clone(),
                ttl_secs: ttl.as_secs(),
                issuer: issuer.clone(),
                audience: audience.clone(),
                now_unix,
            })
            .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
    }
}
