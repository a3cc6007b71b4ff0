//! JSON objects without repeated member names, for JOSE headers and JWT claims.
//!
//! RFC 7519 §4: "The Claim Names within a JWT Claims Set MUST be unique; JWT parsers MUST
//! either reject JWTs with duplicate Claim Names or use a JSON parser that returns only the
//! lexically last duplicate member name". RFC 7515 §5.2 says the same of the JOSE Header.
//! pgate rejects: with "last one wins" two parsers (an IdP's audit tool, a downstream
//! service, pgate) can read one signed token as two different sets of claims, and a
//! signer that builds tokens from untrusted input can be made to sign a claim it never
//! meant to. This module is a `serde` visitor that builds a [`serde_json::Value`] and
//! fails on the first repeated name, at any depth (the `act` chain included).
//!
//! What it must never do: accept a document `serde_json` would reject, or decide anything
//! about the claims.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What [`parse`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not JSON (or nested deeper than `serde_json`'s limit of 128).
    Malformed,
    /// An object repeats a member name.
    RepeatedMember,
}

/// The message of the visitor's own error, to tell it from a syntax error.
const REPEATED: &str = "a member name is repeated";

/// Parses `bytes` as JSON, refusing an object that repeats a member name.
pub fn parse(bytes: &[u8]) -> Result<Value, Refused> {
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(Unique(v)) => Ok(v),
        Err(e) if e.is_data() && e.to_string().starts_with(REPEATED) => {
            Err(Refused::RepeatedMember)
        }
        Err(_) => Err(Refused::Malformed),
    }
}

struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Unique(v) = map.next_value()?;
            if out.contains_key(&name) {
                return Err(de::Error::custom(REPEATED));
            }
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        for doc in [
            r#"{"a":1,"b":[1,-2,3.5,"x",null,true],"c":{"d":{}}}"#,
            r#"[]"#,
            r#""\u00e9""#,
            r#"{"n":18446744073709551615,"m":-9223372036854775808,"f":1e300}"#,
        ] {
            let want: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(parse(doc.as_bytes()), Ok(want), "{doc}");
        }
    }

    #[test]
    fn a_repeated_name_is_refused_at_any_depth() {
        assert_eq!(
            parse(br#"{"sub":"a","sub":"b"}"#),
            Err(Refused::RepeatedMember)
        );
        assert_eq!(
            parse(br#"{"act":{"sub":"a","act":{"sub":"b","sub":"c"}}}"#),
            Err(Refused::RepeatedMember)
        );
        assert_eq!(
            parse(br#"{"x":[{"k":1,"k":1}]}"#),
            Err(Refused::RepeatedMember)
        );
        // Escapes do not hide a repeat: both spell "sub".
        assert_eq!(
            parse(br#"{"sub":"a","s\u0075b":"b"}"#),
            Err(Refused::RepeatedMember)
        );
        // The same name in two objects is no repeat.
        assert!(parse(br#"{"sub":"a","act":{"sub":"a"}}"#).is_ok());
    }

    #[test]
    fn not_json_is_malformed() {
        for doc in [
            &b"{"[..],
            b"{\"a\":}",
            b"\xff",
            b"{\"a\":1} x",
            b"{\"a\":NaN}",
        ] {
            assert_eq!(parse(doc), Err(Refused::Malformed), "{doc:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(parse(deep.as_bytes()), Err(Refused::Malformed));
    }
}
