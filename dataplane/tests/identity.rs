//! JWT identity, end to end with real keys: `pgate token` generates and signs, the
//! authenticator verifies against the JWKS file, and the policy table maps claims to roles.
//! No mocks: every token here is signed (or forged) with real ES256, EdDSA, RS256 or HMAC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use pgate::identity::{
    IdentityConfig, IdentityError, Jwks, JwsAlg, JwtAuthenticator, MAX_DELEGATION_DEPTH,
    TokenError, select_role,
};
use pgate::session::{Authenticator, Identity};
use pgate::token::{self, InitKeys, MintArgs, TokenToolError};
use pgate_core::table::model::*;
use pgate_core::table::{RoleId, Table, write};
use serde_json::{Value, json};

const ISS: &str = "https://idp.test";
const AUD: &str = "pgate";
const NOW: u64 = 1_800_000_000;
const TTL: u64 = 900;

/// A throwaway RSA-2048 key made for this test only (the `rsa` crate generates far too
/// slowly in debug builds). Not a secret of anything.
const TEST_RSA_PKCS1_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA0iclTWOB+kLXyVET0TuZO/6UzMahAbjWmBBPdLDtwvPdLa2o
7H6OtrgK8Owm4yzA2SzKMOI47bQQfGpWSvYVBvHTvtuiRldQ0PM3WHHgq038d7U0
wMFWIZtWgfzCEDndfpqGI3Q5p8scjiKvzwKnaka5zxP8LebWds8DB4zZwx3aLp/w
MiJOyqS6ZHh34Dlu38v8EMusvq22NmX0ipJHKFLjNgUxXfLlV3pMkbqvixY0k6QV
3H1s6qnUHRm/nABRUIbddriNy6aWkecWmbYPKrDSktVVSr/3K8JP7rPmuO7R2bBd
+qcHgN2exVmuRwByxRyPKc28SMTHvkQ+CuhWiwIDAQABAoIBAD1ib9PuF/5I3g0Q
4LACL51FnKM/9bGyEwSx5vOX5qtGXjnEew4xXXBjy9ZZtHYxEVeebKTgv243ZYVh
7jjRLo0rwAUE1J6lTJbsJCNyiAShr/grdvBCyOziGd+4O9tPe7JKYpoijeDERGAE
I8Rc6xfw9r9VABlMTyK/Dwx6iPUj0AqrzHqttA3b1CZxfKya9CeuUxwovh05sj62
rQ7LrbYme9LfZBGCraUwrV0567lsI5eolGU5ORB7CmoUv3GtP6Hh0GqIqeqhnRhm
Ynq0zC7D/l+Ya4wUk4ZEwN1RztOCrLNczolANLr+d5XGnZmfeOQ8Qufm7N0ZAVBd
j3Dj4skCgYEA/p2J+a0Wi2f11zCvm2kgdCrNBRboEKIL3Q2ZEL2bp+tiFQiYtIWd
vsdD8g8cUBZRBsv4ERP3kTYNrXUlYRPwRCmcdyCSuOuZWvrVjxXFEU54HcBz3scI
TrZ/VCo3KWkFPeYrKLR/11L/ycFq+b+47ysJjcnTKjZM/8H9pBsUbuUCgYEA00u1
aFuj/fcZQapvXgWedXMZwPS6pQFd/LnmGd/4UEkze9JPeA8O94TNAbpaiDnWS84d
jhY9GuWlwRYUT3fAcARhZwOOCqTsI18RtG8n7fct31A8stVl9D6/2+zkPq27HgAm
rOv7bo/LbE0e0Pup9Z/PKX3o70gpkfeA1+2d6K8CgYEAujIO0m1HjU7LM0DBSs9I
EmuyXkRwFKnMLy1ggCOIjvXNVkBhG7KStw8VmxB9zftj6aqDkEmfw6tZuT1vxlxE
WjRr3ZoOcfiovyWrwuVSpeNSZ79zfLjkVFuVJcFxcXEBilClwzCsRJTHxY0SY+1W
mmBIrk2nhLkM+gOtLrM28BkCgYBeAeMWKR+PUK7V/mRKKqnTi4A7zyZzX2ZXmMX9
YR5zaf4T6wAcZGa+TUGAsU6yKTlkxLF1lANfwii6/X3P1XGy5OAJGxXJOpMtMZEI
/COBxmWMY4B9+F/CCWEHEiCCmn0T3fFXIi7dg/B3oOBDDpURiSZ8SV6nhy2nmbyj
VT7aVQKBgQD9205KGdY43vIrdPzjlLbL0pDMY5uK+zHjzt+rsXg+UAHfSSe7snWr
psP1ih4kUP6QfmFy8CnIzhRbF3liPkpHDKo9Nj3FcEvTLAvV5PrtkSEVwzOlSYj8
o0wm+MeWySbCkKe+IXXHk1U8cWKfKC2nEu7TnupvyAKAHDLVEAQPjQ==
-----END RSA PRIVATE KEY-----";
/// Its modulus, base64url (exponent AQAB).
const TEST_RSA_N: &str = "0iclTWOB-kLXyVET0TuZO_6UzMahAbjWmBBPdLDtwvPdLa2o7H6OtrgK8Owm4yzA2SzKMOI47bQQfGpWSvYVBvHTvtuiRldQ0PM3WHHgq038d7U0wMFWIZtWgfzCEDndfpqGI3Q5p8scjiKvzwKnaka5zxP8LebWds8DB4zZwx3aLp_wMiJOyqS6ZHh34Dlu38v8EMusvq22NmX0ipJHKFLjNgUxXfLlV3pMkbqvixY0k6QV3H1s6qnUHRm_nABRUIbddriNy6aWkecWmbYPKrDSktVVSr_3K8JP7rPmuO7R2bBd-qcHgN2exVmuRwByxRyPKc28SMTHvkQ-CuhWiw";

// ---------------------------------------------------------------- policy

fn role(name: &str, members: &[(&str, &str)]) -> CompiledRole {
    CompiledRole {
        groups: None,
        name: name.into(),
        members: members
            .iter()
            .map(|(c, v)| Membership {
                claim: (*c).into(),
                value: (*v).into(),
            })
            .collect(),
        cells: vec![],
        functions: vec![],
        patterns: vec![],
        masks: vec![],
        limits: Limits::default(),
        token_use: Default::default(),
        rates: vec![],
        budgets: vec![],
        delegation: Default::default(),
    }
}

/// The writer numbers roles itself: look ids up with [`role_id`].
fn policy() -> Vec<u8> {
    write(&CompiledPolicy {
        source_digest: [0; 32],
        catalog: Catalog {
            aliases: vec![],
            tables: vec![],
            functions: vec![],
        },
        rules: vec![],
        roles: vec![
            role("analyst", &[("groups", "data-analysts")]),
            role("ai-agent", &[("client_id", "agent-7")]),
            role("tier3", &[("tier", "3"), ("premium", "true")]),
            role("dba", &[("realm_access.roles", "dba")]),
            role("nobody", &[]),
        ],
    })
    .expect("the policy lays out")
}

fn role_id(table: &[u8], name: &str) -> RoleId {
    Table::parse(table).unwrap().role(name).unwrap()
}

// ---------------------------------------------------------------- fixture

struct Fixture {
    _dir: tempfile::TempDir,
    keys: InitKeys,
    /// The JWKS the authenticator reloads from (a copy of `keys.jwks_path` to start).
    jwks_path: PathBuf,
    auth: JwtAuthenticator,
    table: Vec<u8>,
}

fn fixture_with(config: IdentityConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = token::init_keys(&dir.path().join("keys")).unwrap();
    let jwks_path = dir.path().join("live-jwks.json");
    std::fs::copy(&keys.jwks_path, &jwks_path).unwrap();
    let (auth, warnings) = JwtAuthenticator::from_file(config, &jwks_path).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    Fixture {
        _dir: dir,
        keys,
        jwks_path,
        auth,
        table: policy(),
    }
}

fn fixture() -> Fixture {
    fixture_with(IdentityConfig::new(ISS, AUD))
}

impl Fixture {
    fn args(&self) -> MintArgs {
        MintArgs {
            key_path: self.keys.key_path.clone(),
            kid: None,
            sub: "alice@example.com".into(),
            claims: vec![("groups".into(), json!(["data-analysts", "staff"]))],
            act: vec![],
            ttl_secs: TTL,
            issuer: ISS.into(),
            audience: AUD.into(),
            now_unix: NOW,
        }
    }

    fn mint(&self, edit: impl FnOnce(&mut MintArgs)) -> String {
        let mut a = self.args();
        edit(&mut a);
        token::mint(&a).unwrap()
    }

    /// Through the trait, as the session calls it.
    fn auth_at(&self, user: &str, token: &str, now: u64) -> Result<Identity, String> {
        let table = Table::parse(&self.table).unwrap();
        self.auth.authenticate(user, token, &table, now)
    }

    fn check(&self, token: &str) -> Result<Identity, String> {
        self.auth_at("analyst", token, NOW)
    }

    fn refused(&self, token: &str) -> String {
        match self.check(token) {
            Ok(id) => panic!("accepted: {id:?}"),
            Err(e) => e,
        }
    }

    /// The fixture's ES256 signing key, for hand-made headers and claims.
    fn es256_key(&self) -> EncodingKey {
        let pem = std::fs::read_to_string(&self.keys.key_path).unwrap();
        let sk = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
        EncodingKey::from_ec_der(sk.to_pkcs8_der().unwrap().as_bytes())
    }

    /// Valid claims at NOW, to edit.
    fn claims(&self) -> Value {
        json!({
            "iss": ISS, "aud": AUD, "sub": "alice@example.com",
            "iat": NOW, "exp": NOW + TTL, "groups": ["data-analysts"],
        })
    }

    fn es256(&self, claims: &Value) -> String {
        sign(
            &json!({"alg": "ES256", "typ": "JWT", "kid": self.keys.kid}),
            claims,
            &self.es256_key(),
            Algorithm::ES256,
        )
    }

    fn write_jwks(&self, jwks: &Value) {
        std::fs::write(&self.jwks_path, jwks.to_string()).unwrap();
    }
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A compact JWS with exactly this header and these claims.
fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!("{}.{}", b64json(header), b64json(claims));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn own_jwk(f: &Fixture) -> Value {
    let text = std::fs::read_to_string(&f.keys.jwks_path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["keys"][0].clone()
}

fn ed25519_key() -> (ed25519_dalek::SigningKey, Value) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes());
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed-1", "alg": "EdDSA", "use": "sig"});
    (sk, jwk)
}

fn ed25519_encoding(sk: &ed25519_dalek::SigningKey) -> EncodingKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    EncodingKey::from_ed_der(sk.to_pkcs8_der().unwrap().as_bytes())
}

fn rsa_jwk() -> Value {
    json!({"kty": "RSA", "n": TEST_RSA_N, "e": "AQAB", "kid": "rsa-1", "alg": "RS256", "use": "sig"})
}

fn rsa_encoding() -> EncodingKey {
    let body: String = TEST_RSA_PKCS1_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    EncodingKey::from_rsa_der(&STANDARD.decode(body).unwrap())
}

// ---------------------------------------------------------------- acceptance

#[test]
fn valid_token_gives_subject_role_actors_and_expiry() {
    let f = fixture();
    let t = f.mint(|a| a.act = vec!["agent-7".into(), "orchestrator".into()]);
    let id = f.check(&t).unwrap();
    assert_eq!(
        id,
        Identity {
            subject: "alice@example.com".into(),
            actors: vec!["agent-7".into(), "orchestrator".into()],
            issuer: ISS.into(),
            token_id: id.token_id.clone(),
            bound_cert: None,
            role: role_id(&f.table, "analyst"),
            role_name: "analyst".into(),
            variant: None,
            expires_at_unix: NOW + TTL + IdentityConfig::DEFAULT_LEEWAY_SECS,
            claims: id.claims.clone(),
        }
    );
    // The act claim is nested outermost first, as RFC 8693 §4.1 lays it out.
    let payload = t.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    // The identity keeps every claim (a reload re-maps them to roles).
    assert_eq!(Value::Object(id.claims.clone()), claims);
    assert_eq!(
        claims["act"],
        json!({"sub": "agent-7", "act": {"sub": "orchestrator"}})
    );
    let header = t.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], f.keys.kid.as_str());
}

#[test]
fn eddsa_and_rs256_keys_verify() {
    let f = fixture();
    let (ed, ed_jwk) = ed25519_key();
    f.write_jwks(&json!({"keys": [own_jwk(&f), ed_jwk, rsa_jwk()]}));
    assert!(f.auth.reload(&f.jwks_path).unwrap().is_empty());
    let claims = f.claims();

    let t = sign(
        &json!({"alg": "EdDSA", "kid": "ed-1"}),
        &claims,
        &ed25519_encoding(&ed),
        Algorithm::EdDSA,
    );
    assert_eq!(f.check(&t).unwrap().role_name, "analyst");
    let t = sign(
        &json!({"alg": "RS256", "kid": "rsa-1"}),
        &claims,
        &rsa_encoding(),
        Algorithm::RS256,
    );
    assert_eq!(f.check(&t).unwrap().role_name, "analyst");

    // A key serves only the algorithm of its type.
    let t = sign(
        &json!({"alg": "ES256", "kid": "rsa-1"}),
        &claims,
        &f.es256_key(),
        Algorithm::ES256,
    );
    assert_eq!(
        f.refused(&t),
        "algorithm ES256 does not match the key's type"
    );
    let t = sign(
        &json!({"alg": "RS256", "kid": f.keys.kid}),
        &claims,
        &rsa_encoding(),
        Algorithm::RS256,
    );
    assert_eq!(
        f.refused(&t),
        "algorithm RS256 does not match the key's type"
    );
}

#[test]
fn allow_list_is_honoured() {
    let mut c = IdentityConfig::new(ISS, AUD);
    c.allowed_algs = vec![JwsAlg::Es256];
    let f = fixture_with(c);
    f.write_jwks(&json!({"keys": [own_jwk(&f), rsa_jwk()]}));
    f.auth.reload(&f.jwks_path).unwrap();
    let t = sign(
        &json!({"alg": "RS256", "kid": "rsa-1"}),
        &f.claims(),
        &rsa_encoding(),
        Algorithm::RS256,
    );
    assert_eq!(f.refused(&t), "algorithm RS256 is not allowed");
    let t = sign(
        &json!({"alg": "PS256", "kid": "rsa-1"}),
        &f.claims(),
        &rsa_encoding(),
        Algorithm::PS256,
    );
    assert_eq!(f.refused(&t), "algorithm PS256 is not allowed");
    assert!(f.check(&f.mint(|_| {})).is_ok());
}

// ---------------------------------------------------------------- refusals

/// Signs a header and claims given as JSON text (which a `Value` could not repeat names in).
fn sign_raw(f: &Fixture, header: &str, claims: &str) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &f.es256_key(), Algorithm::ES256).unwrap();
    format!("{msg}.{sig}")
}

#[test]
fn a_repeated_member_name_is_refused_in_the_header_and_the_claims() {
    let f = fixture();
    let kid = &f.keys.kid;
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}"}}"#);
    let claims = |extra: &str| {
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice@example.com","exp":{},"groups":["data-analysts"]{extra}}}"#,
            NOW + TTL
        )
    };
    // The same text without a repeat is accepted: what follows fails on the repeat alone.
    assert!(f.check(&sign_raw(&f, &header, &claims(""))).is_ok());
    let cases = [
        // A second `sub`: "last one wins" would make this bob.
        (header.clone(), claims(r#","sub":"bob@example.com""#)),
        // A second `groups`, granting more.
        (header.clone(), claims(r#","groups":["admins"]"#)),
        // Inside the delegation chain.
        (
            header.clone(),
            claims(r#","act":{"sub":"agent-1","sub":"agent-2"}"#),
        ),
        // The header: a second `alg` or `kid`.
        (
            format!(r#"{{"alg":"ES256","kid":"{kid}","alg":"RS256"}}"#),
            claims(""),
        ),
        (
            format!(r#"{{"alg":"ES256","kid":"{kid}","kid":"other"}}"#),
            claims(""),
        ),
    ];
    for (h, c) in cases {
        let e = f.refused(&sign_raw(&f, &h, &c));
        assert_eq!(
            e, "token repeats a member name in its header or claims",
            "{h} {c}"
        );
    }
}

#[test]
fn a_confirmation_claim_binds_the_token_to_a_certificate_or_is_refused() {
    let f = fixture();
    let mut c = f.claims();
    let t = [7u8; 32];
    c["cnf"] = json!({"x5t#S256": URL_SAFE_NO_PAD.encode(t)});
    assert_eq!(f.check(&f.es256(&c)).unwrap().bound_cert, Some(t));
    assert_eq!(f.check(&f.es256(&f.claims())).unwrap().bound_cert, None);
    // A confirmation pgate cannot check is not taken as a bearer token.
    c["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    assert_eq!(
        f.refused(&f.es256(&c)),
        "the token is bound by a confirmation method pgate does not check (`cnf` member `jkt`)"
    );
    for bad in [
        json!({"x5t#S256": URL_SAFE_NO_PAD.encode([1u8; 20])}),
        json!({"x5t#S256": 5}),
        json!({}),
        json!("x5t"),
    ] {
        c["cnf"] = bad.clone();
        assert_eq!(f.refused(&f.es256(&c)), "claim `cnf` is malformed", "{bad}");
    }
}

#[test]
fn the_leeway_that_admits_a_token_also_sets_when_its_session_ends() {
    let f = fixture();
    let t = f.mint(|_| {});
    let exp = NOW + TTL;
    let leeway = IdentityConfig::DEFAULT_LEEWAY_SECS;
    // Admitted within the leeway after exp: the session may run until exp + leeway, not
    // end the moment it starts.
    let id = f.auth_at("analyst", &t, exp + leeway - 1).unwrap();
    assert_eq!(id.expires_at_unix, exp + leeway);
    let mut c = IdentityConfig::new(ISS, AUD);
    c.leeway_secs = 0;
    let strict = fixture_with(c);
    let t = strict.mint(|_| {});
    assert_eq!(
        strict.auth_at("analyst", &t, NOW).unwrap().expires_at_unix,
        exp
    );
}

#[test]
fn expired_and_leeway() {
    let f = fixture();
    let t = f.mint(|_| {});
    let exp = NOW + TTL;
    let leeway = IdentityConfig::DEFAULT_LEEWAY_SECS;
    assert!(f.auth_at("analyst", &t, exp - 1).is_ok());
    // Within the leeway after exp: still accepted.
    assert!(f.auth_at("analyst", &t, exp + leeway - 1).is_ok());
    assert_eq!(
        f.auth_at("analyst", &t, exp + leeway).unwrap_err(),
        "token expired"
    );

    // No leeway: exp itself is too late (RFC 7519: now must be before exp).
    let mut c = IdentityConfig::new(ISS, AUD);
    c.leeway_secs = 0;
    let strict = fixture_with(c);
    let t = strict.mint(|_| {});
    assert!(strict.auth_at("analyst", &t, exp - 1).is_ok());
    assert_eq!(
        strict.auth_at("analyst", &t, exp).unwrap_err(),
        "token expired"
    );
}

#[test]
fn missing_or_malformed_exp() {
    let f = fixture();
    let mut c = f.claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(f.refused(&f.es256(&c)), "token has no expiry");
    c["exp"] = json!("tomorrow");
    assert_eq!(f.refused(&f.es256(&c)), "claim `exp` is malformed");
    // A fractional NumericDate is fine.
    c["exp"] = json!((NOW + 10) as f64 + 0.5);
    assert_eq!(
        f.check(&f.es256(&c)).unwrap().expires_at_unix,
        NOW + 10 + IdentityConfig::DEFAULT_LEEWAY_SECS
    );
}

#[test]
fn not_yet_valid_and_leeway() {
    let f = fixture();
    let leeway = IdentityConfig::DEFAULT_LEEWAY_SECS;
    let mut c = f.claims();
    c["nbf"] = json!(NOW + leeway + 1);
    assert_eq!(f.refused(&f.es256(&c)), "token not yet valid");
    c["nbf"] = json!(NOW + leeway);
    assert!(f.check(&f.es256(&c)).is_ok());
    c["nbf"] = json!(NOW - 100);
    assert!(f.check(&f.es256(&c)).is_ok());
}

#[test]
fn wrong_audience() {
    let f = fixture();
    assert_eq!(
        f.refused(&f.mint(|a| a.audience = "other".into())),
        "wrong audience"
    );
    let mut c = f.claims();
    c["aud"] = json!(["other", AUD]);
    assert!(f.check(&f.es256(&c)).is_ok());
    c["aud"] = json!(["other", "pgate-staging"]);
    assert_eq!(f.refused(&f.es256(&c)), "wrong audience");
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(f.refused(&f.es256(&c)), "wrong audience");
}

#[test]
fn wrong_issuer() {
    let f = fixture();
    assert_eq!(
        f.refused(&f.mint(|a| a.issuer = "https://evil.test".into())),
        "wrong issuer"
    );
    let mut c = f.claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(f.refused(&f.es256(&c)), "wrong issuer");
}

#[test]
fn bad_signature() {
    let f = fixture();
    // Another key pair, same kid: the signature cannot verify with our public key.
    let other = tempfile::tempdir().unwrap();
    let other = token::init_keys(other.path()).unwrap();
    let t = f.mint(|a| {
        a.key_path = other.key_path.clone();
        a.kid = Some(f.keys.kid.clone());
    });
    assert_eq!(f.refused(&t), "signature does not verify");

    // Our key, payload swapped afterwards.
    let good = f.mint(|_| {});
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut c = f.claims();
    c["groups"] = json!(["admins"]);
    parts[1] = b64json(&c);
    assert_eq!(f.refused(&parts.join(".")), "signature does not verify");

    // A DER-encoded or truncated ECDSA signature is no JWS signature.
    parts = good.split('.').map(str::to_string).collect();
    parts[2].truncate(40);
    assert_eq!(f.refused(&parts.join(".")), "signature does not verify");
}

#[test]
fn alg_none_is_refused() {
    let f = fixture();
    let claims = b64json(&f.claims());
    // {"alg":"none"}
    let t = format!("eyJhbGciOiJub25lIn0.{claims}.");
    assert_eq!(f.refused(&t), "algorithm `none` is not allowed");
    for h in [
        json!({"alg": "none", "kid": f.keys.kid}),
        json!({"alg": "NONE"}),
        json!({"alg": "None"}),
    ] {
        let t = format!("{}.{claims}.", b64json(&h));
        assert_eq!(f.refused(&t), "algorithm `none` is not allowed");
    }
    // And with a signature part present anyway.
    let t = format!("eyJhbGciOiJub25lIn0.{claims}.AAAA");
    assert_eq!(f.refused(&t), "algorithm `none` is not allowed");
}

#[test]
fn hs256_with_public_key_as_secret_is_refused() {
    let f = fixture();
    let jwk = own_jwk(&f);
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
    let jwks_text = std::fs::read(&f.keys.jwks_path).unwrap();
    for secret in [
        point.as_slice(),
        jwks_text.as_slice(),
        jwk.to_string().as_bytes(),
    ] {
        for (alg, name) in [
            (Algorithm::HS256, "HS256"),
            (Algorithm::HS384, "HS384"),
            (Algorithm::HS512, "HS512"),
        ] {
            let t = sign(
                &json!({"alg": name, "kid": f.keys.kid}),
                &f.claims(),
                &EncodingKey::from_secret(secret),
                alg,
            );
            assert_eq!(f.refused(&t), format!("algorithm {name} is not allowed"));
        }
    }
    // HMAC cannot even be configured.
    let e = "HS256".parse::<JwsAlg>().unwrap_err();
    assert!(matches!(e, IdentityError::BadAlgorithm { .. }), "{e}");
    assert!("none".parse::<JwsAlg>().is_err());
    assert_eq!("EdDSA".parse::<JwsAlg>().unwrap(), JwsAlg::EdDsa);
}

#[test]
fn unknown_or_missing_kid() {
    let f = fixture();
    assert_eq!(
        f.refused(&f.mint(|a| a.kid = Some("nope".into()))),
        "unknown key id"
    );
    let t = sign(
        &json!({"alg": "ES256"}),
        &f.claims(),
        &f.es256_key(),
        Algorithm::ES256,
    );
    assert_eq!(f.refused(&t), "token has no key id");
    let t = sign(
        &json!({"alg": "ES256", "kid": 7}),
        &f.claims(),
        &f.es256_key(),
        Algorithm::ES256,
    );
    assert_eq!(f.refused(&t), "malformed token");
}

#[test]
fn embedded_keys_in_the_header_are_ignored() {
    // An attacker's own key in `jwk` (or a `jku` URL) must not be used.
    let f = fixture();
    let other = tempfile::tempdir().unwrap();
    let other = token::init_keys(other.path()).unwrap();
    let other_jwk: Value =
        serde_json::from_str::<Value>(&std::fs::read_to_string(&other.jwks_path).unwrap()).unwrap()
            ["keys"][0]
            .clone();
    let pem = std::fs::read_to_string(&other.key_path).unwrap();
    let sk = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
    let key = EncodingKey::from_ec_der(sk.to_pkcs8_der().unwrap().as_bytes());
    let h = json!({"alg": "ES256", "kid": f.keys.kid, "jwk": other_jwk, "jku": "https://evil.test/jwks"});
    assert_eq!(
        f.refused(&sign(&h, &f.claims(), &key, Algorithm::ES256)),
        "signature does not verify"
    );
    let h = json!({"alg": "ES256", "kid": other.kid, "jwk": other_jwk});
    assert_eq!(
        f.refused(&sign(&h, &f.claims(), &key, Algorithm::ES256)),
        "unknown key id"
    );
}

#[test]
fn missing_or_bad_sub() {
    let f = fixture();
    let mut c = f.claims();
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(f.refused(&f.es256(&c)), "token has no subject");
    c["sub"] = json!("");
    assert_eq!(f.refused(&f.es256(&c)), "token has no subject");
    c["sub"] = json!(42);
    assert_eq!(f.refused(&f.es256(&c)), "claim `sub` is malformed");
    c["sub"] = json!("alice\n{\"forged\":1}");
    assert_eq!(f.refused(&f.es256(&c)), "claim `sub` is malformed");
}

#[test]
fn oversize_token() {
    let f = fixture();
    let t = f.mint(|a| a.claims.push(("padding".into(), json!("x".repeat(9000)))));
    assert_eq!(f.refused(&t), "token too long (more than 8192 bytes)");
}

#[test]
fn critical_header_and_malformed_tokens() {
    let f = fixture();
    let t = sign(
        &json!({"alg": "ES256", "kid": f.keys.kid, "crit": ["b64"], "b64": false}),
        &f.claims(),
        &f.es256_key(),
        Algorithm::ES256,
    );
    assert_eq!(
        f.refused(&t),
        "critical header extensions are not supported"
    );

    let good = f.mint(|_| {});
    let p: Vec<&str> = good.split('.').collect();
    for bad in [
        String::new(),
        "abc".into(),
        format!("{}.{}", p[0], p[1]),
        format!("{good}.x.y"),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("!!.{}.{}", p[1], p[2]),
        format!("{}.{}.", p[0], p[1]),
        format!("{}.{}.{}", b64json(&json!([1, 2])), p[1], p[2]),
        format!("{}.{}.{}", b64json(&json!({"kid": f.keys.kid})), p[1], p[2]),
    ] {
        assert_eq!(f.refused(&bad), "malformed token", "{bad}");
    }
    // A signed payload that is not a JSON object.
    let msg = format!("{}.{}", p[0], URL_SAFE_NO_PAD.encode("[1]"));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &f.es256_key(), Algorithm::ES256).unwrap();
    assert_eq!(f.refused(&format!("{msg}.{sig}")), "malformed token");
    // Unknown algorithm names are not echoed back.
    let t = format!(
        "{}.{}.{}",
        b64json(&json!({"alg": "\u{1b}[31mX"})),
        p[1],
        p[2]
    );
    assert_eq!(f.refused(&t), "unsupported algorithm");
}

#[test]
fn delegation_chain_is_bounded() {
    let f = fixture();
    let chain = |n: usize| (0..n).map(|i| format!("agent-{i}")).collect::<Vec<_>>();
    let t = f.mint(|a| a.act = chain(MAX_DELEGATION_DEPTH));
    assert_eq!(f.check(&t).unwrap().actors, chain(MAX_DELEGATION_DEPTH));
    let t = f.mint(|a| a.act = chain(MAX_DELEGATION_DEPTH + 1));
    assert_eq!(f.refused(&t), "delegation chain too deep");

    let mut c = f.claims();
    c["act"] = json!("agent-7");
    assert_eq!(f.refused(&f.es256(&c)), "claim `act` is malformed");
    c["act"] = json!({"client_id": "agent-7"});
    assert_eq!(f.refused(&f.es256(&c)), "claim `act` is malformed");
    c["act"] = json!({"sub": "agent-7", "act": {"sub": "orchestrator"}});
    assert_eq!(
        f.check(&f.es256(&c)).unwrap().actors,
        ["agent-7", "orchestrator"]
    );
}

// ---------------------------------------------------------------- rotation

#[test]
fn rotation_by_reload() {
    let f = fixture();
    let old_token = f.mint(|_| {});
    assert!(f.check(&old_token).is_ok());

    // A second key pair is published next to the first: its tokens become valid.
    let d2 = tempfile::tempdir().unwrap();
    let k2 = token::init_keys(d2.path()).unwrap();
    let jwk2: Value = serde_json::from_str::<Value>(
        &std::fs::read_to_string(&k2.jwks_path).unwrap(),
    )
    .unwrap()["keys"][0]
        .clone();
    let new_token = f.mint(|a| a.key_path = k2.key_path.clone());
    assert_eq!(f.refused(&new_token), "unknown key id");
    f.write_jwks(&json!({"keys": [own_jwk(&f), jwk2.clone()]}));
    assert!(f.auth.reload(&f.jwks_path).unwrap().is_empty());
    assert!(f.check(&old_token).is_ok());
    assert!(f.check(&new_token).is_ok());
    let mut kids = vec![f.keys.kid.clone(), k2.kid.clone()];
    kids.sort();
    assert_eq!(f.auth.kids(), kids);

    // The old key is retired: its tokens are refused.
    f.write_jwks(&json!({"keys": [jwk2]}));
    f.auth.reload(&f.jwks_path).unwrap();
    assert_eq!(f.refused(&old_token), "unknown key id");
    assert!(f.check(&new_token).is_ok());

    // A broken file, or one with no usable key, keeps the keys in use.
    for broken in [
        "{\"keys\": [",
        "{\"nokeys\": []}",
        "{\"keys\": [{\"kty\": \"oct\", \"kid\": \"h\", \"k\": \"c2VjcmV0\"}]}",
    ] {
        std::fs::write(&f.jwks_path, broken).unwrap();
        assert!(f.auth.reload(&f.jwks_path).is_err(), "{broken}");
        assert!(f.check(&new_token).is_ok());
        assert_eq!(f.refused(&old_token), "unknown key id");
    }
    assert!(matches!(
        f.auth.reload(Path::new("/nonexistent/jwks.json")),
        Err(IdentityError::Io { .. })
    ));
    assert!(f.check(&new_token).is_ok());
}

#[test]
fn jwks_loader_skips_unusable_keys_with_reasons() {
    let f = fixture();
    let mine = own_jwk(&f);
    let mut no_kid = mine.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut dup = mine.clone();
    dup["x"] = json!("AAAA");
    let mut wrong_alg = mine.clone();
    wrong_alg["kid"] = json!("wrong-alg");
    wrong_alg["alg"] = json!("HS256");
    let mut private = mine.clone();
    private["kid"] = json!("private");
    private["d"] = json!("AAAA");
    let mut enc = mine.clone();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let mut off_curve = mine.clone();
    off_curve["kid"] = json!("off-curve");
    off_curve["y"] = off_curve["x"].clone();
    let mut short_rsa = rsa_jwk();
    short_rsa["kid"] = json!("short-rsa");
    short_rsa["n"] = json!(URL_SAFE_NO_PAD.encode([0xc5u8; 128]));
    let mut e1_rsa = rsa_jwk();
    e1_rsa["kid"] = json!("e1-rsa");
    e1_rsa["e"] = json!("AQ");
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    let weak_ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": URL_SAFE_NO_PAD.encode(identity_point)});
    let (_, ed) = ed25519_key();
    let text = json!({"keys": [
        mine,
        no_kid,
        dup,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
        wrong_alg,
        private,
        enc,
        off_curve,
        short_rsa,
        {"kty": "Unknown", "kid": "u"},
        e1_rsa,
        weak_ed,
        ed,
        rsa_jwk(),
    ]})
    .to_string();
    let (jwks, warnings) = Jwks::parse(&text).unwrap();
    let mut kids = vec![f.keys.kid.clone(), "ed-1".into(), "rsa-1".into()];
    kids.sort();
    assert_eq!(jwks.kids(), kids);
    let reasons: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    let expect = [
        (1, "no `kid`"),
        (2, "duplicate `kid`"),
        (3, "symmetric key"),
        (4, "unsupported curve `P-384`"),
        (5, "algorithm `HS256` is unsupported for this key"),
        (6, "private key material"),
        (7, "`use` is not `sig`"),
        (8, "not a point on P-256"),
        (9, "RSA modulus of 1024 bits"),
        (10, "unsupported key type `Unknown`"),
        (11, "invalid RSA exponent"),
        (12, "weak Ed25519 key"),
    ];
    assert_eq!(warnings.len(), expect.len(), "{reasons:#?}");
    for ((index, reason), w) in expect.iter().zip(&warnings) {
        assert_eq!(w.index, *index, "{reasons:#?}");
        assert!(w.reason.contains(reason), "{w} (expected {reason})");
    }

    // Nothing usable: an error naming why.
    let e = Jwks::parse(r#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#).unwrap_err();
    assert!(e.to_string().contains("no usable key"), "{e}");
    assert!(e.to_string().contains("symmetric"), "{e}");
    assert!(matches!(
        Jwks::parse(r#"{"keys": []}"#),
        Err(IdentityError::NoUsableKeys { .. })
    ));
    assert!(matches!(Jwks::parse("[]"), Err(IdentityError::JwksShape)));
    assert!(matches!(Jwks::parse("{"), Err(IdentityError::JwksJson(_))));

    // An oversized file is not read.
    let big = f.jwks_path.with_file_name("big.json");
    std::fs::write(
        &big,
        " ".repeat((pgate::identity::MAX_JWKS_BYTES + 1) as usize),
    )
    .unwrap();
    assert!(matches!(
        Jwks::load(&big),
        Err(IdentityError::JwksTooLarge { .. })
    ));
}

#[test]
fn configuration_is_checked() {
    let (jwks, _) = Jwks::parse(&json!({"keys": [rsa_jwk()]}).to_string()).unwrap();
    let mut c = IdentityConfig::new(ISS, AUD);
    c.allowed_algs.clear();
    assert!(JwtAuthenticator::new(c, jwks.clone()).is_err());
    assert!(JwtAuthenticator::new(IdentityConfig::new("", AUD), jwks.clone()).is_err());
    assert!(JwtAuthenticator::new(IdentityConfig::new(ISS, ""), jwks.clone()).is_err());
    assert!(JwtAuthenticator::new(IdentityConfig::new(ISS, AUD), jwks).is_ok());
    fn shared<T: Send + Sync + 'static>() {}
    shared::<JwtAuthenticator>();
}

// ---------------------------------------------------------------- roles

#[test]
fn role_selection_by_startup_user() {
    let f = fixture();
    let both = f.mint(|a| {
        a.claims = vec![
            ("groups".into(), json!(["data-analysts"])),
            ("client_id".into(), json!("agent-7")),
        ]
    });
    let pick = |user: &str, t: &str| f.auth_at(user, t, NOW).map(|id| (id.role, id.role_name));
    let analyst = role_id(&f.table, "analyst");
    let agent_role = role_id(&f.table, "ai-agent");
    assert_ne!(analyst, agent_role);
    assert_eq!(pick("analyst", &both).unwrap(), (analyst, "analyst".into()));
    assert_eq!(
        pick("ai-agent", &both).unwrap(),
        (agent_role, "ai-agent".into())
    );
    assert_eq!(
        pick("postgres", &both).unwrap_err(),
        "token grants roles ai-agent, analyst: connect with user set to one of them"
    );
    // A role the token does not grant cannot be chosen.
    assert_eq!(
        pick("dba", &both).unwrap_err(),
        "token grants roles ai-agent, analyst: connect with user set to one of them"
    );

    // One role granted: the user name does not matter.
    let agent = f.mint(|a| a.claims = vec![("client_id".into(), json!("agent-7"))]);
    assert_eq!(pick("postgres", &agent).unwrap().1, "ai-agent");
    assert_eq!(pick("analyst", &agent).unwrap().1, "ai-agent");

    // None granted (a role without memberships is never granted).
    let none = f.mint(|a| a.claims = vec![("groups".into(), json!(["data-analysts-2", "sales"]))]);
    assert_eq!(
        pick("nobody", &none).unwrap_err(),
        "token grants no role in this policy"
    );
    let none = f.mint(|a| a.claims = vec![]);
    assert_eq!(
        pick("analyst", &none).unwrap_err(),
        "token grants no role in this policy"
    );
}

#[test]
fn membership_matching_by_claim_type() {
    let f = fixture();
    let role_of = |claims: Vec<(&str, Value)>| {
        let t = f.mint(|a| {
            a.claims = claims
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        });
        f.auth_at("", &t, NOW).map(|id| id.role_name)
    };
    assert_eq!(
        role_of(vec![("groups", json!("data-analysts"))]).unwrap(),
        "analyst"
    );
    assert_eq!(
        role_of(vec![("groups", json!(["x", "data-analysts"]))]).unwrap(),
        "analyst"
    );
    assert_eq!(role_of(vec![("tier", json!(3))]).unwrap(), "tier3");
    assert_eq!(role_of(vec![("tier", json!("3"))]).unwrap(), "tier3");
    assert_eq!(role_of(vec![("tier", json!([1, 3]))]).unwrap(), "tier3");
    assert_eq!(role_of(vec![("premium", json!(true))]).unwrap(), "tier3");
    assert!(role_of(vec![("premium", json!(false))]).is_err());
    assert!(role_of(vec![("tier", json!(3.5))]).is_err());
    assert!(role_of(vec![("groups", json!({"data-analysts": true}))]).is_err());
    assert!(role_of(vec![("groups", json!([["data-analysts"]]))]).is_err());
    // Nested claims by dotted path (Keycloak's realm_access.roles).
    assert_eq!(
        role_of(vec![("realm_access", json!({"roles": ["dba", "x"]}))]).unwrap(),
        "dba"
    );
    assert!(role_of(vec![("realm_access", json!({"roles": "x"}))]).is_err());
}

// ---------------------------------------------------------------- token tooling

#[test]
fn init_keys_writes_a_private_key_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let k = token::init_keys(dir.path()).unwrap();
    assert_eq!(k.key_path, dir.path().join(token::SIGNING_KEY_FILE));
    assert_eq!(k.jwks_path, dir.path().join(token::JWKS_FILE));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&k.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(&k.key_path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let sk = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(token::p256_kid(&sk.public_key()), k.kid);
    assert_eq!(k.kid.len(), 16);

    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(&k.jwks_path).unwrap()).unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], k.kid.as_str());
    assert!(jwk.get("d").is_none());

    assert!(matches!(
        token::init_keys(dir.path()),
        Err(TokenToolError::Exists(_))
    ));
    assert_eq!(std::fs::read_to_string(&k.key_path).unwrap(), pem);
}

#[test]
fn mint_refuses_reserved_claims_and_bad_input() {
    let f = fixture();
    for name in token::RESERVED_CLAIMS {
        let mut a = f.args();
        a.claims.push(((*name).into(), json!("x")));
        assert!(
            matches!(token::mint(&a), Err(TokenToolError::ReservedClaim(_))),
            "{name}"
        );
    }
    let mut a = f.args();
    a.ttl_secs = 0;
    assert!(matches!(token::mint(&a), Err(TokenToolError::ZeroTtl)));
    let mut a = f.args();
    a.sub.clear();
    assert!(matches!(token::mint(&a), Err(TokenToolError::EmptySubject)));
    let mut a = f.args();
    a.key_path = f.keys.jwks_path.clone();
    let e = token::mint(&a).unwrap_err();
    assert!(matches!(e, TokenToolError::BadKey(_)), "{e}");
}

#[test]
fn parse_helpers() {
    use std::time::Duration;
    assert_eq!(
        token::parse_duration("15m").unwrap(),
        Duration::from_secs(900)
    );
    assert_eq!(
        token::parse_duration("1h").unwrap(),
        Duration::from_secs(3600)
    );
    assert_eq!(
        token::parse_duration("3600s").unwrap(),
        Duration::from_secs(3600)
    );
    assert_eq!(
        token::parse_duration("2d").unwrap(),
        Duration::from_secs(172_800)
    );
    assert_eq!(
        token::parse_duration("1h30m").unwrap(),
        Duration::from_secs(5400)
    );
    assert_eq!(
        token::parse_duration("90").unwrap(),
        Duration::from_secs(90)
    );
    assert!(token::parse_duration("soon").is_err());
    assert!(token::parse_duration("").is_err());
    assert!(token::parse_duration("-5m").is_err());

    assert_eq!(
        token::parse_claim("groups=data-analysts").unwrap(),
        ("groups".into(), json!("data-analysts"))
    );
    assert_eq!(
        token::parse_claim("groups=[\"a\",\"b\"]").unwrap(),
        ("groups".into(), json!(["a", "b"]))
    );
    assert_eq!(
        token::parse_claim("tier=3").unwrap(),
        ("tier".into(), json!(3))
    );
    assert_eq!(
        token::parse_claim("x=a=b").unwrap(),
        ("x".into(), json!("a=b"))
    );
    assert_eq!(token::parse_claim("x=").unwrap(), ("x".into(), json!("")));
    assert!(token::parse_claim("novalue").is_err());
    assert!(token::parse_claim("=v").is_err());
}

#[test]
fn library_api_gives_typed_results() {
    let f = fixture();
    let t = f.mint(|a| {
        a.claims = vec![
            ("groups".into(), json!("data-analysts")),
            ("client_id".into(), json!("agent-7")),
        ];
        a.act = vec!["agent-7".into()];
    });
    let v = f.auth.verify_token(&t, NOW).unwrap();
    assert_eq!(v.subject, "alice@example.com");
    assert_eq!(v.actors, ["agent-7"]);
    assert_eq!(v.kid, f.keys.kid);
    assert_eq!(v.alg, JwsAlg::Es256);
    assert_eq!(v.expires_at_unix, NOW + TTL);
    let table = Table::parse(&f.table).unwrap();
    assert_eq!(
        select_role("", &v.claims, &table),
        Err(TokenError::AmbiguousRole(vec![
            "ai-agent".into(),
            "analyst".into()
        ]))
    );
    assert_eq!(
        select_role("ai-agent", &v.claims, &table),
        Ok(role_id(&f.table, "ai-agent"))
    );
    assert_eq!(
        f.auth
            .verify("x", &t, &table, NOW + TTL + 3600)
            .unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        f.auth.verify_token("a.b", NOW).unwrap_err(),
        TokenError::Malformed
    );
}

#[test]
fn command_line_init_keys_then_mint() {
    use pgate::token::{TokenArgs, TokenCommand, run_cli};
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("k");
    run_cli(&TokenArgs {
        command: TokenCommand::InitKeys { dir: keys.clone() },
    })
    .unwrap();
    assert!(keys.join(token::SIGNING_KEY_FILE).exists());
    let mint = |claims: Vec<String>, ttl: &str| {
        run_cli(&TokenArgs {
            command: TokenCommand::Mint {
                key: keys.join(token::SIGNING_KEY_FILE),
                kid: None,
                sub: "alice".into(),
                claims,
                act: vec!["agent-7".into()],
                ttl: ttl.into(),
                issuer: ISS.into(),
                audience: AUD.into(),
            },
        })
    };
    mint(vec!["groups=data-analysts".into()], "15m").unwrap();
    assert!(
        mint(vec!["exp=1".into()], "15m")
            .unwrap_err()
            .contains("set by pgate")
    );
    assert!(
        mint(vec![], "soon")
            .unwrap_err()
            .contains("invalid duration")
    );
    assert!(
        run_cli(&TokenArgs {
            command: TokenCommand::InitKeys { dir: keys },
        })
        .unwrap_err()
        .contains("already exists")
    );
}
