//! JWT identity: who a client is, from the OIDC token it presents as its password.
//!
//! [`Jwks`] holds the issuer's public keys (a JWKS file: EC P-256 for ES256, OKP Ed25519 for
//! EdDSA, RSA for RS256), each under its `kid`. [`JwtAuthenticator`] verifies a compact JWS
//! against them — algorithm allow-list, key id, signature, `iss`, `aud`, `exp`, `nbf`, `sub`
//! — reads the RFC 8693 delegation chain (`act`) and picks the policy role the token's claims
//! grant. It implements [`crate::session::Authenticator`]; [`JwtAuthenticator::reload`]
//! swaps the key set atomically (SIGHUP), keeping the old keys if the new file is broken.
//!
//! Time is the caller's: `exp` and `nbf` are checked against the `now_unix` the session passes
//! in, never the system clock, so verification is deterministic and testable.
//!
//! What it must never do: log, echo or store a token (or any part of one) anywhere; verify with
//! anything but a public key from the JWKS (no HMAC — an HS256 token "signed" with a public key
//! as its secret is refused before any key is touched —, no `none`, no key embedded in or
//! pointed to by the token: `jwk`, `jku`, `x5u`, `x5c` are ignored); look at claims before the
//! signature verified; or put anything secret into an error, since errors are shown to the
//! client after "token rejected: ".

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use pgate_core::table::{RoleId, Table};
use serde_json::{Map, Value};

use crate::session::{Authenticator, Identity};

mod unique_json;

/// Largest JWKS file read (a key set is a few KiB; this only bounds a mistake).
pub const MAX_JWKS_BYTES: u64 = 1 << 20;
/// Longest `act` chain accepted.
pub const MAX_DELEGATION_DEPTH: usize = pgate_core::table::model::MAX_DELEGATION_DEPTH as usize;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (what the verifier supports).
pub const MAX_RSA_BITS: usize = 4096;

// ---------------------------------------------------------------- algorithms

/// A signature algorithm pgate verifies. Only asymmetric ones exist here: HMAC (`HS*`) and
/// `none` cannot be configured at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl JwsAlg {
    /// All supported algorithms, the default allow-list.
    pub const ALL: [JwsAlg; 3] = [JwsAlg::Es256, JwsAlg::EdDsa, JwsAlg::Rs256];

    /// The JOSE name (`ES256`, `EdDSA`, `RS256`).
    pub fn name(self) -> &'static str {
        match self {
            JwsAlg::Es256 => "ES256",
            JwsAlg::EdDsa => "EdDSA",
            JwsAlg::Rs256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            JwsAlg::Es256 => Algorithm::ES256,
            JwsAlg::EdDsa => Algorithm::EdDSA,
            JwsAlg::Rs256 => Algorithm::RS256,
        }
    }

    fn from_jose(name: &str) -> Option<JwsAlg> {
        match name {
            "ES256" => Some(JwsAlg::Es256),
            "EdDSA" => Some(JwsAlg::EdDsa),
            "RS256" => Some(JwsAlg::Rs256),
            _ => None,
        }
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JwsAlg {
    type Err = IdentityError;

    /// Parses a configured algorithm name. `HS*` and `none` are refused with the reason.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(alg) = JwsAlg::from_jose(s) {
            return Ok(alg);
        }
        let reason = if s.eq_ignore_ascii_case("none") {
            "unsigned tokens are never accepted"
        } else if s.starts_with("HS") {
            "HMAC algorithms are never accepted: pgate verifies with public keys only"
        } else {
            "supported: ES256, EdDSA, RS256"
        };
        Err(IdentityError::BadAlgorithm {
            name: s.to_string(),
            reason,
        })
    }
}

/// JOSE algorithm names that exist but pgate does not verify: named in the refusal, while an
/// unknown string from a token is never echoed.
const KNOWN_JOSE_ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS384", "RS512", "PS256", "PS384", "PS512", "ES384", "ES512",
    "ES256K", "Ed25519", "Ed448",
];

// ---------------------------------------------------------------- errors

/// Setting identity up: configuration and JWKS loading. Shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read JWKS {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("JWKS {path} is larger than {MAX_JWKS_BYTES} bytes")]
    JwksTooLarge { path: PathBuf },
    #[error("JWKS is not valid JSON: {0}")]
    JwksJson(#[from] serde_json::Error),
    #[error("JWKS has no `keys` array")]
    JwksShape,
    #[error("JWKS has no usable key ({} skipped{})", skipped.len(), first_reason(skipped))]
    NoUsableKeys { skipped: Vec<JwksWarning> },
    #[error("algorithm {name} cannot be allowed: {reason}")]
    BadAlgorithm { name: String, reason: &'static str },
    #[error("identity configuration: {0}")]
    Config(&'static str),
}

fn first_reason(skipped: &[JwksWarning]) -> String {
    skipped
        .first()
        .map(|w| format!("; first: {w}"))
        .unwrap_or_default()
}

/// Why a token was refused. The `Display` text is what the client sees after "token
/// rejected: ": it names the cause and nothing else (never the token, a key or a claim value
/// other than the policy's own role names).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token too long (more than {max} bytes)")]
    TooLong { max: usize },
    #[error("malformed token")]
    Malformed,
    #[error("token repeats a member name in its header or claims")]
    RepeatedMember,
    #[error("algorithm `none` is not allowed")]
    AlgNone,
    #[error("algorithm {0} is not allowed")]
    AlgNotAllowed(&'static str),
    #[error("unsupported algorithm")]
    UnsupportedAlg,
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    #[error("token has no key id")]
    MissingKid,
    #[error("unknown key id")]
    UnknownKid,
    #[error("algorithm {0} does not match the key's type")]
    KeyMismatch(&'static str),
    #[error("signature does not verify")]
    BadSignature,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("token has no expiry")]
    MissingExp,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no subject")]
    MissingSub,
    #[error("claim `{0}` is malformed")]
    BadClaim(&'static str),
    #[error("delegation chain too deep")]
    DelegationTooDeep,
    #[error(
        "the token is bound by a confirmation method pgate does not check (`cnf` member `{0}`)"
    )]
    UnsupportedConfirmation(String),
    #[error("token grants no role in this policy")]
    NoRole,
    #[error("token grants roles {}: connect with user set to one of them", .0.join(", "))]
    AmbiguousRole(Vec<String>),
}

// ---------------------------------------------------------------- JWKS

/// A JWKS entry that was skipped, and why. Returned by the loader for the operator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksWarning {
    /// Position in the `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: String,
}

impl fmt::Display for JwksWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(
                f,
                "key #{} (kid {kid:?}) skipped: {}",
                self.index, self.reason
            ),
            None => write!(f, "key #{} skipped: {}", self.index, self.reason),
        }
    }
}

#[derive(Clone, Debug)]
struct VerifyKey {
    alg: JwsAlg,
    key: DecodingKey,
}

/// The issuer's public keys by `kid`. Each key verifies exactly one algorithm (from its type
/// and curve): EC P-256 → ES256, OKP Ed25519 → EdDSA, RSA → RS256.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: HashMap<String, VerifyKey>,
}

impl Jwks {
    /// Reads and parses a JWKS file. See [`Jwks::parse`].
    pub fn load(path: &Path) -> Result<(Jwks, Vec<JwksWarning>), IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_JWKS_BYTES + 1).read_to_string(&mut text))
            .map_err(io)?;
        if text.len() as u64 > MAX_JWKS_BYTES {
            return Err(IdentityError::JwksTooLarge {
                path: path.to_path_buf(),
            });
        }
        Jwks::parse(&text)
    }

    /// Parses `{"keys": [...]}`. Keys without `kid`, of an unsupported type, curve or
    /// algorithm, not meant for signatures, carrying private material, or with a duplicate
    /// `kid` are skipped and reported; no usable key at all is an error.
    pub fn parse(text: &str) -> Result<(Jwks, Vec<JwksWarning>), IdentityError> {
        let doc: Value = serde_json::from_str(text)?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(IdentityError::JwksShape)?;
        let mut keys = HashMap::new();
        let mut warnings = Vec::new();
        for (index, jwk) in list.iter().enumerate() {
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
            let result = match &kid {
                None => Err("no `kid`".to_string()),
                Some(k) if k.is_empty() => Err("empty `kid`".to_string()),
                Some(k) if keys.contains_key(k) => Err("duplicate `kid`".to_string()),
                Some(_) => parse_jwk(jwk),
            };
            match (result, kid) {
                (Ok(key), Some(kid)) => {
                    keys.insert(kid, key);
                }
                (Err(reason), kid) => warnings.push(JwksWarning { index, kid, reason }),
                (Ok(_), None) => {}
            }
        }
        if keys.is_empty() {
            return Err(IdentityError::NoUsableKeys { skipped: warnings });
        }
        Ok((Jwks { keys }, warnings))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable key ids, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}

fn b64_field(jwk: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn parse_jwk(jwk: &Value) -> Result<VerifyKey, String> {
    if !jwk.is_object() {
        return Err("not a JSON object".into());
    }
    if let Some(u) = jwk.get("use")
        && u.as_str() != Some("sig")
    {
        return Err("`use` is not `sig`".into());
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Err("`key_ops` does not include `verify`".into());
        }
    }
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let crv = jwk.get("crv").and_then(Value::as_str);
    let alg = match (kty, crv) {
        ("EC", Some("P-256")) => JwsAlg::Es256,
        ("OKP", Some("Ed25519")) => JwsAlg::EdDsa,
        ("RSA", _) => JwsAlg::Rs256,
        ("oct", _) => {
            return Err("symmetric key (kty `oct`): pgate verifies with public keys only".into());
        }
        ("EC" | "OKP", Some(c)) => return Err(format!("unsupported curve `{c}`")),
        ("EC" | "OKP", None) => return Err("no `crv`".into()),
        ("", _) => return Err("no `kty`".into()),
        (k, _) => return Err(format!("unsupported key type `{k}`")),
    };
    if let Some(a) = jwk.get("alg") {
        let a = a.as_str().unwrap_or("");
        let ok = a == alg.name() || (alg == JwsAlg::EdDsa && a == "Ed25519");
        if !ok {
            return Err(format!(
                "algorithm `{a}` is unsupported for this key (expected {alg})"
            ));
        }
    }
    // A JWKS is published: private parameters in it mean the operator's key leaked.
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|f| jwk.get(f).is_some())
    {
        return Err("contains private key material: publish public keys only".into());
    }
    let key = match alg {
        JwsAlg::Es256 => {
            let x = b64_field(jwk, "x")?;
            let y = b64_field(jwk, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| "not a point on P-256".to_string())?;
            DecodingKey::from_ec_der(&point)
        }
        JwsAlg::EdDsa => {
            let x = b64_field(jwk, "x")?;
            let bytes: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| "Ed25519 key must be 32 bytes".to_string())?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| "not a valid Ed25519 public key".to_string())?;
            if vk.is_weak() {
                return Err("weak Ed25519 key (small order)".into());
            }
            DecodingKey::from_ed_der(&bytes)
        }
        JwsAlg::Rs256 => {
            let n = b64_field(jwk, "n")?;
            let e = b64_field(jwk, "e")?;
            let n_trimmed = strip_leading_zeros(&n);
            let e_trimmed = strip_leading_zeros(&e);
            let bits = bit_len(n_trimmed);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus of {bits} bits (at least {MIN_RSA_BITS} required)"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "RSA modulus of {bits} bits (at most {MAX_RSA_BITS} supported)"
                ));
            }
            // Odd, at least 3, at most 2^33 - 1 (what the verifier accepts).
            let e_value = (e_trimmed.len() <= 8)
                .then(|| e_trimmed.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)));
            if !e_value.is_some_and(|e| e >= 3 && e & 1 == 1 && e < 1 << 33) {
                return Err("invalid RSA exponent".into());
            }
            DecodingKey::from_rsa_raw_components(n_trimmed, e_trimmed)
        }
    };
    Ok(VerifyKey { alg, key })
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&first) => b.len() * 8 - first.leading_zeros() as usize,
    }
}

/// Makes jsonwebtoken's RustCrypto backend the process default unless one is installed
/// already: with both of its backend features enabled somewhere in the build, it would
/// otherwise panic on first use rather than pick one.
pub(crate) fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
    );
}

// ---------------------------------------------------------------- configuration

/// What a token must say to be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Exact `iss`.
    pub issuer: String,
    /// Must be `aud`, or one of the `aud` array.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// Header `alg` values accepted (default: all of [`JwsAlg::ALL`]).
    pub allowed_algs: Vec<JwsAlg>,
    /// Longest token accepted, bytes.
    pub max_token_bytes: usize,
}

impl IdentityConfig {
    pub const DEFAULT_LEEWAY_SECS: u64 = 30;
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;

    /// Defaults for everything but issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        IdentityConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
            allowed_algs: JwsAlg::ALL.to_vec(),
            max_token_bytes: Self::DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    fn validate(&self) -> Result<(), IdentityError> {
        if self.issuer.is_empty() {
            return Err(IdentityError::Config("issuer is empty"));
        }
        if self.audience.is_empty() {
            return Err(IdentityError::Config("audience is empty"));
        }
        if self.allowed_algs.is_empty() {
            return Err(IdentityError::Config("no algorithm allowed"));
        }
        if self.max_token_bytes == 0 {
            return Err(IdentityError::Config("max token size is 0"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- verification

/// A token whose signature and registered claims verified; roles not chosen yet.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    pub subject: String,
    /// The `act` chain, outermost (current) actor first.
    pub actors: Vec<String>,
    pub expires_at_unix: u64,
    /// `jti`, if the token has one.
    pub token_id: Option<String>,
    /// `cnf` `x5t#S256` (RFC 8705 §3.1), decoded: the client certificate it is bound to.
    pub bound_cert: Option<[u8; 32]>,
    pub kid: String,
    pub alg: JwsAlg,
    /// All claims, for role mapping.
    pub claims: Map<String, Value>,
}

/// Verifies JWTs against a JWKS that can be swapped while sessions run. Share it (`Arc`)
/// between workers: verification only reads.
pub struct JwtAuthenticator {
    config: IdentityConfig,
    keys: ArcSwap<Jwks>,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("config", &self.config)
            .field("kids", &self.keys.load().kids())
            .finish()
    }
}

impl JwtAuthenticator {
    pub fn new(config: IdentityConfig, jwks: Jwks) -> Result<Self, IdentityError> {
        config.validate()?;
        install_crypto_provider();
        if jwks.is_empty() {
            return Err(IdentityError::NoUsableKeys { skipped: vec![] });
        }
        Ok(JwtAuthenticator {
            config,
            keys: ArcSwap::from_pointee(jwks),
        })
    }

    /// [`JwtAuthenticator::new`] with the keys of a JWKS file; the warnings are for the log.
    pub fn from_file(
        config: IdentityConfig,
        jwks_path: &Path,
    ) -> Result<(Self, Vec<JwksWarning>), IdentityError> {
        let (jwks, warnings) = Jwks::load(jwks_path)?;
        Ok((JwtAuthenticator::new(config, jwks)?, warnings))
    }

    /// From the operator's `identity` settings (default algorithm allow-list and token size
    /// limit). Skipped JWKS keys are reported on stderr, as the operator's log; use
    /// [`JwtAuthenticator::from_file`] to get them instead.
    pub fn from_config(c: &crate::config::Identity) -> Result<Self, IdentityError> {
        let mut config = IdentityConfig::new(c.issuer.clone(), c.audience.clone());
        config.leeway_secs = c.leeway.as_secs();
        let (auth, warnings) = JwtAuthenticator::from_file(config, &c.jwks)?;
        for w in warnings {
            eprintln!("pgate: JWKS {}: {w}", c.jwks.display());
        }
        Ok(auth)
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The key ids currently in use, sorted.
    pub fn kids(&self) -> Vec<String> {
        self.keys.load().kids()
    }

    /// Re-reads the JWKS (SIGHUP). On success the new key set replaces the old one for every
    /// later verification and the skipped-key warnings are returned; on error the old keys
    /// stay in use.
    pub fn reload(&self, jwks_path: &Path) -> Result<Vec<JwksWarning>, IdentityError> {
        let (jwks, warnings) = Jwks::load(jwks_path)?;
        self.keys.store(Arc::new(jwks));
        Ok(warnings)
    }

    /// Replaces the key set (for callers that obtained it elsewhere).
    pub fn replace_keys(&self, jwks: Jwks) -> Result<(), IdentityError> {
        if jwks.is_empty() {
            return Err(IdentityError::NoUsableKeys { skipped: vec![] });
        }
        self.keys.store(Arc::new(jwks));
        Ok(())
    }

    /// Verifies the token and picks the role (see [`select_role`]).
    pub fn verify(
        &self,
        user: &str,
        token: &str,
        table: &Table<'_>,
        now_unix: u64,
    ) -> Result<Identity, TokenError> {
        let t = self.verify_token(token, now_unix)?;
        let role = select_role(user, &t.claims, table)?;
        Ok(Identity {
            subject: t.subject,
            actors: t.actors,
            issuer: self.config.issuer.clone(),
            token_id: t.token_id,
            bound_cert: t.bound_cert,
            role,
            role_name: table.role_name(role).to_string(),
            variant: None,
            // The leeway that admitted the token at login is also its session's: a token
            // accepted just after `exp` is not cut off the moment it is admitted.
            expires_at_unix: t.expires_at_unix.saturating_add(self.config.leeway_secs),
            claims: t.claims,
        })
    }

    /// Verifies header, signature and registered claims at `now_unix`.
    pub fn verify_token(&self, token: &str, now_unix: u64) -> Result<VerifiedToken, TokenError> {
        let cfg = &self.config;
        if token.len() > cfg.max_token_bytes {
            return Err(TokenError::TooLong {
                max: cfg.max_token_bytes,
            });
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };

        // Header: algorithm and key, before any key is touched.
        let header = decode_object(h64)?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(TokenError::Malformed)?;
        let alg = match JwsAlg::from_jose(alg_name) {
            Some(a) => a,
            None if alg_name.eq_ignore_ascii_case("none") => return Err(TokenError::AlgNone),
            None => {
                return Err(KNOWN_JOSE_ALGS
                    .iter()
                    .find(|k| **k == alg_name)
                    .map_or(TokenError::UnsupportedAlg, |k| TokenError::AlgNotAllowed(k)));
            }
        };
        if !cfg.allowed_algs.contains(&alg) {
            return Err(TokenError::AlgNotAllowed(alg.name()));
        }
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        let kid = match header.get("kid") {
            None => return Err(TokenError::MissingKid),
            Some(Value::String(k)) => k,
            Some(_) => return Err(TokenError::Malformed),
        };
        let keys = self.keys.load();
        let key = keys.keys.get(kid).ok_or(TokenError::UnknownKid)?;
        if key.alg != alg {
            return Err(TokenError::KeyMismatch(alg.name()));
        }

        // Signature over "header.payload".
        if s64.is_empty() || URL_SAFE_NO_PAD.decode(s64).is_err() {
            return Err(TokenError::Malformed);
        }
        let signed = token
            .get(..h64.len() + 1 + p64.len())
            .ok_or(TokenError::Malformed)?;
        match jsonwebtoken::crypto::verify(s64, signed.as_bytes(), &key.key, alg.jwt()) {
            Ok(true) => {}
            _ => return Err(TokenError::BadSignature),
        }

        // Claims.
        let claims = decode_object(p64)?;
        if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == cfg.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&cfg.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }
        let exp = match claims.get("exp") {
            None => return Err(TokenError::MissingExp),
            Some(v) => numeric_date(v, false).ok_or(TokenError::BadClaim("exp"))?,
        };
        if now_unix >= exp.saturating_add(cfg.leeway_secs) {
            return Err(TokenError::Expired);
        }
        if let Some(v) = claims.get("nbf") {
            let nbf = numeric_date(v, true).ok_or(TokenError::BadClaim("nbf"))?;
            if now_unix.saturating_add(cfg.leeway_secs) < nbf {
                return Err(TokenError::NotYetValid);
            }
        }
        let subject = match claims.get("sub") {
            None => return Err(TokenError::MissingSub),
            Some(Value::String(s)) if s.is_empty() => return Err(TokenError::MissingSub),
            Some(Value::String(s)) if printable(s) => s.clone(),
            Some(_) => return Err(TokenError::BadClaim("sub")),
        };
        let actors = delegation_chain(claims.get("act"))?;
        let token_id = match claims.get("jti") {
            None => None,
            Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 && printable(j) => {
                Some(j.clone())
            }
            Some(_) => return Err(TokenError::BadClaim("jti")),
        };
        let bound_cert = confirmation(claims.get("cnf"))?;
        Ok(VerifiedToken {
            subject,
            actors,
            expires_at_unix: exp,
            token_id,
            bound_cert,
            kid: kid.clone(),
            alg,
            claims,
        })
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(
        &self,
        user: &str,
        token: &str,
        table: &Table<'_>,
        now_unix: u64,
    ) -> Result<Identity, String> {
        self.verify(user, token, table, now_unix)
            .map_err(|e| e.to_string())
    }

    /// The role by name in the new table, if the token's claims still grant it.
    fn rebind(&self, identity: &Identity, table: &Table<'_>) -> Result<RoleId, String> {
        let role = crate::session::role_by_name(identity, table)?;
        if granted_roles(&identity.claims, table).contains(&role) {
            Ok(role)
        } else {
            Err(format!(
                "the token no longer maps to role \"{}\"",
                identity.role_name
            ))
        }
    }
}

/// A header or the claims: a JSON object whose member names are unique at every depth
/// (see `unique_json`).
fn decode_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    match unique_json::parse(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Err(unique_json::Refused::RepeatedMember) => Err(TokenError::RepeatedMember),
        _ => Err(TokenError::Malformed),
    }
}

/// A NumericDate as whole seconds: rounded down for `exp`, up for `nbf` (the stricter way).
fn numeric_date(v: &Value, round_up: bool) -> Option<u64> {
    if let Some(u) = v.as_u64() {
        return Some(u);
    }
    let f = v.as_f64()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    // `as` saturates at u64::MAX.
    Some(if round_up {
        f.ceil() as u64
    } else {
        f.floor() as u64
    })
}

/// RFC 7800 `cnf`: only `x5t#S256` (RFC 8705 §3.1, the SHA-256 of the client certificate,
/// base64url) is checked; a token confirmed any other way (`jkt` for DPoP, `jwk`, …) is
/// refused rather than taken as a bearer token its issuer did not mean it to be.
fn confirmation(cnf: Option<&Value>) -> Result<Option<[u8; 32]>, TokenError> {
    let Some(cnf) = cnf else { return Ok(None) };
    let obj = cnf.as_object().ok_or(TokenError::BadClaim("cnf"))?;
    if let Some(other) = obj.keys().find(|k| k.as_str() != "x5t#S256") {
        let shown: String = other.chars().filter(|c| !c.is_control()).take(32).collect();
        return Err(TokenError::UnsupportedConfirmation(shown));
    }
    let Some(t) = obj.get("x5t#S256") else {
        return Err(TokenError::BadClaim("cnf"));
    };
    let bytes = t
        .as_str()
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or(TokenError::BadClaim("cnf"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| TokenError::BadClaim("cnf"))
}

/// No control characters: subjects end up in logs and audit lines.
fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// `{"sub": "a", "act": {"sub": "b"}}` → `["a", "b"]` (RFC 8693 §4.1: the outermost `act`
/// is the current actor, nested ones are prior actors).
fn delegation_chain(mut act: Option<&Value>) -> Result<Vec<String>, TokenError> {
    let mut actors = Vec::new();
    while let Some(a) = act {
        let obj = a.as_object().ok_or(TokenError::BadClaim("act"))?;
        if actors.len() == MAX_DELEGATION_DEPTH {
            return Err(TokenError::DelegationTooDeep);
        }
        match obj.get("sub") {
            Some(Value::String(s)) if !s.is_empty() && printable(s) => actors.push(s.clone()),
            _ => return Err(TokenError::BadClaim("act")),
        }
        act = obj.get("act");
    }
    Ok(actors)
}

// ---------------------------------------------------------------- roles

/// The claim named `name`: a top-level claim of that exact name, else — for names with dots,
/// like `realm_access.roles` — the path through nested objects.
fn claim<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn scalar_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => (if *b { "true" } else { "false" }) == want,
        _ => false,
    }
}

fn claim_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| scalar_matches(i, want)),
        other => scalar_matches(other, want),
    }
}

/// The roles of `table` the claims grant: a role is granted when, for one of its memberships
/// `(claim, value)`, the claim equals `value` (a string, or a number or boolean written as
/// one) or is an array containing it.
pub fn granted_roles(claims: &Map<String, Value>, table: &Table<'_>) -> Vec<RoleId> {
    (0..table.role_count())
        .map(RoleId)
        .filter(|&r| {
            table
                .memberships(r)
                .any(|(c, v)| claim(claims, c).is_some_and(|cv| claim_matches(cv, v)))
        })
        .collect()
}

/// Picks the session's role: the granted role named by the startup `user`, else the only
/// granted role; several granted and none named is an error listing them (sorted by name).
pub fn select_role(
    user: &str,
    claims: &Map<String, Value>,
    table: &Table<'_>,
) -> Result<RoleId, TokenError> {
    let granted = granted_roles(claims, table);
    if let Some(&r) = granted.iter().find(|&&r| table.role_name(r) == user) {
        return Ok(r);
    }
    match granted.as_slice() {
        [] => Err(TokenError::NoRole),
        [only] => Ok(*only),
        many => {
            let mut names: Vec<String> = many
                .iter()
                .map(|&r| table.role_name(r).to_string())
                .collect();
            names.sort();
            Err(TokenError::AmbiguousRole(names))
        }
    }
}
