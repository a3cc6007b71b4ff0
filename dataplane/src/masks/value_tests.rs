//! Tests of `value.rs`. Expected hashes come from `hmac`/`sha2` directly, never from the
//! code under test.

use super::*;

const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn key() -> HashKey {
    HashKey::new(KEY)
}

/// The reference MAC: HMAC-SHA256 keyed with the 32-byte key as given.
fn reference(domain: &str, canonical: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&KEY).unwrap();
    m.update(b"pgate-mask-v1\0");
    m.update(domain.as_bytes());
    m.update(b"\0");
    m.update(canonical);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mask(
    action: MaskAction,
    family: Family,
    format: Format,
    value: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let mut out = b"prefix".to_vec();
    let written = mask_value(action, family, format, &key(), value, &mut out).unwrap();
    assert!(out.starts_with(b"prefix"), "mask_value appends");
    let out = out[6..].to_vec();
    assert_eq!(written, !out.is_empty());
    if written {
        Some(out)
    } else {
        assert!(out.is_empty(), "NULL writes nothing");
        None
    }
}

fn hash(family: Family, format: Format, value: &[u8]) -> Vec<u8> {
    mask(MaskAction::Hash, family, format, Some(value)).unwrap()
}

fn hash_err(family: Family, format: Format, value: &[u8]) -> MaskError {
    let mut out = Vec::new();
    let e = mask_value(
        MaskAction::Hash,
        family,
        format,
        &key(),
        Some(value),
        &mut out,
    )
    .unwrap_err();
    assert!(out.is_empty(), "an error writes nothing");
    e
}

const FAMILIES: [Family; 6] = [
    Family::Text,
    Family::Int2,
    Family::Int4,
    Family::Int8,
    Family::Uuid,
    Family::Bytea,
];
const FORMATS: [Format; 2] = [Format::Text, Format::Binary];

#[test]
fn padded_key_is_the_same_hmac_key() {
    let mut out = Vec::new();
    mask_value(
        MaskAction::Hash,
        Family::Text,
        Format::Text,
        &key(),
        Some(b"x"),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, hex(&reference("text", b"x")[..16]).into_bytes());
}

#[test]
fn null_stays_null_for_every_action_family_and_format() {
    for action in [MaskAction::Redact, MaskAction::Null, MaskAction::Hash] {
        for family in FAMILIES {
            if !supports(action, family) {
                continue;
            }
            for format in FORMATS {
                assert_eq!(mask(action, family, format, None), None);
            }
        }
    }
}

#[test]
fn null_action_is_always_null() {
    for family in FAMILIES {
        for format in FORMATS {
            // Not parsed: even a value that is not of its type becomes NULL.
            assert_eq!(mask(MaskAction::Null, family, format, Some(b"zz")), None);
        }
    }
}

#[test]
fn redact_is_text_only() {
    for format in FORMATS {
        assert_eq!(
            mask(
                MaskAction::Redact,
                Family::Text,
                format,
                Some("Zoë".as_bytes())
            ),
            Some(b"***".to_vec())
        );
        assert_eq!(
            mask(MaskAction::Redact, Family::Text, format, Some(b"")),
            Some(b"***".to_vec())
        );
    }
    for family in FAMILIES {
        assert_eq!(supports(MaskAction::Redact, family), family == Family::Text);
        assert!(supports(MaskAction::Null, family) && supports(MaskAction::Hash, family));
        if family != Family::Text {
            let mut out = Vec::new();
            let e = mask_value(
                MaskAction::Redact,
                family,
                Format::Text,
                &key(),
                None,
                &mut out,
            )
            .unwrap_err();
            assert_eq!(
                e,
                MaskError::Unsupported {
                    action: MaskAction::Redact,
                    family
                }
            );
        }
    }
}

#[test]
fn hash_text_known_answers() {
    for v in ["", "alice@example.com", "Zoë", "日本", "tab\there"] {
        let want = hex(&reference("text", v.as_bytes())[..16]).into_bytes();
        assert_eq!(hash(Family::Text, Format::Text, v.as_bytes()), want);
        assert_eq!(hash(Family::Text, Format::Binary, v.as_bytes()), want);
        assert_eq!(want.len(), 32);
    }
}

#[test]
fn hash_int_known_answers() {
    let cases: [(Family, i64); 9] = [
        (Family::Int2, 0),
        (Family::Int2, -32768),
        (Family::Int2, 32767),
        (Family::Int4, 42),
        (Family::Int4, i64::from(i32::MIN)),
        (Family::Int4, i64::from(i32::MAX)),
        (Family::Int8, i64::MIN),
        (Family::Int8, i64::MAX),
        (Family::Int8, -1),
    ];
    for (family, v) in cases {
        let m = reference("int", &v.to_be_bytes());
        let (want_text, want_bin) = match family {
            Family::Int2 => (
                i16::from_be_bytes([m[0], m[1]]).to_string(),
                m[..2].to_vec(),
            ),
            Family::Int4 => (
                i32::from_be_bytes([m[0], m[1], m[2], m[3]]).to_string(),
                m[..4].to_vec(),
            ),
            _ => (
                i64::from_be_bytes(m[..8].try_into().unwrap()).to_string(),
                m[..8].to_vec(),
            ),
        };
        let binary_in = match family {
            Family::Int2 => (v as i16).to_be_bytes().to_vec(),
            Family::Int4 => (v as i32).to_be_bytes().to_vec(),
            _ => v.to_be_bytes().to_vec(),
        };
        assert_eq!(
            hash(family, Format::Text, v.to_string().as_bytes()),
            want_text.as_bytes()
        );
        assert_eq!(hash(family, Format::Binary, &binary_in), want_bin);
        assert_eq!(hash_len(family, Format::Binary), Some(want_bin.len()));
    }
    // The same number hashes the same MAC in every width; leading zeros and -0 are the
    // same number.
    assert_eq!(
        hash(Family::Int4, Format::Text, b"007"),
        hash(Family::Int4, Format::Text, b"7")
    );
    assert_eq!(
        hash(Family::Int4, Format::Text, b"-0"),
        hash(Family::Int4, Format::Text, b"0")
    );
}

#[test]
fn hash_uuid_known_answers_and_input_forms() {
    let raw: [u8; 16] = [
        0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a,
        0x11,
    ];
    let m = reference("uuid", &raw);
    let mut want = [0u8; 16];
    want.copy_from_slice(&m[..16]);
    want[6] = (want[6] & 0x0f) | 0x80;
    want[8] = (want[8] & 0x3f) | 0x80;
    let h = hex(&want);
    let want_text = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    assert_eq!(hash(Family::Uuid, Format::Binary, &raw), want);
    for form in [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
    ] {
        let out = hash(Family::Uuid, Format::Text, form.as_bytes());
        assert_eq!(out, want_text.as_bytes(), "{form}");
    }
    let text = String::from_utf8(hash(Family::Uuid, Format::Text, &raw_text(&raw))).unwrap();
    assert_eq!(&text[14..15], "8", "version 8");
    assert!(
        matches!(&text[19..20], "8" | "9" | "a" | "b"),
        "variant 0b10"
    );
}

fn raw_text(raw: &[u8; 16]) -> Vec<u8> {
    let h = hex(raw);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
    .into_bytes()
}

#[test]
fn hash_bytea_known_answers_in_every_input_form() {
    let raw: &[u8] = b"\x00\x01\\'\xff\xfeabc";
    let m = reference("bytea", raw);
    let want_text = format!("\\x{}", hex(&m[..16]));
    assert_eq!(hash(Family::Bytea, Format::Binary, raw), &m[..16]);
    for form in [
        &b"\\x00015c27fffe616263"[..],
        b"\\x00015C27FFFE616263",
        b"\\x00 01\n5c\t27\rff fe616263",
        // escape format (bytea_output = escape): \\ is a backslash, \ooo a byte
        b"\\000\\001\\\\'\\377\\376abc",
        b"\\000\\001\\134\\047\\377\\376\\141bc",
    ] {
        assert_eq!(
            hash(Family::Bytea, Format::Text, form),
            want_text.as_bytes()
        );
    }
    let empty = format!("\\x{}", hex(&reference("bytea", b"")[..16]));
    assert_eq!(hash(Family::Bytea, Format::Text, b""), empty.as_bytes());
    assert_eq!(hash(Family::Bytea, Format::Text, b"\\x"), empty.as_bytes());
    assert_eq!(hash_len(Family::Bytea, Format::Text), Some(34));
}

#[test]
fn text_and_binary_give_the_same_masked_value() {
    let same = |family, text: &[u8], binary: &[u8]| {
        let t = hash(family, Format::Text, text);
        let b = hash(family, Format::Binary, binary);
        let decoded = match family {
            Family::Int2 => i16::from_be_bytes(b[..].try_into().unwrap())
                .to_string()
                .into_bytes(),
            Family::Int4 => i32::from_be_bytes(b[..].try_into().unwrap())
                .to_string()
                .into_bytes(),
            Family::Int8 => i64::from_be_bytes(b[..].try_into().unwrap())
                .to_string()
                .into_bytes(),
            Family::Uuid => raw_text(&b[..].try_into().unwrap()),
            Family::Bytea => format!("\\x{}", hex(&b)).into_bytes(),
            Family::Text => b,
        };
        assert_eq!(t, decoded, "{family}");
    };
    same(Family::Text, "日本".as_bytes(), "日本".as_bytes());
    same(Family::Int2, b"-12", &(-12i16).to_be_bytes());
    same(Family::Int4, b"123456", &123456i32.to_be_bytes());
    same(
        Family::Int8,
        b"-9223372036854775808",
        &i64::MIN.to_be_bytes(),
    );
    same(
        Family::Uuid,
        b"00000000-0000-0000-0000-000000000001",
        &1u128.to_be_bytes(),
    );
    same(Family::Bytea, b"\\xdeadbeef", b"\xde\xad\xbe\xef");
}

#[test]
fn malformed_values_are_rejected() {
    use Family::*;
    use Format::{Binary, Text as T};
    assert_eq!(
        hash_err(Int4, T, b"12a"),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(
        hash_err(Int4, T, b""),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(
        hash_err(Int4, T, b"-"),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(
        hash_err(Int4, T, b"+1"),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(
        hash_err(Int4, T, b" 1"),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(
        hash_err(Int4, T, b"1-"),
        MaskError::NotANumber { family: Int4 }
    );
    assert_eq!(
        hash_err(Int2, T, b"32768"),
        MaskError::OutOfRange { family: Int2 }
    );
    assert_eq!(
        hash_err(Int4, T, b"2147483648"),
        MaskError::OutOfRange { family: Int4 }
    );
    assert_eq!(
        hash_err(Int8, T, b"9223372036854775808"),
        MaskError::OutOfRange { family: Int8 }
    );
    assert_eq!(
        hash_err(Int8, T, b"000000000000000000001"),
        MaskError::TooLong {
            family: Int8,
            format: T
        }
    );
    assert_eq!(
        hash_err(Int4, Binary, b"\0\0\x01"),
        MaskError::BadLength {
            family: Int4,
            expected: 4
        }
    );
    assert_eq!(
        hash_err(Int4, Binary, b"\0\0\0\0\0"),
        MaskError::BadLength {
            family: Int4,
            expected: 4
        }
    );
    assert_eq!(
        hash_err(Int2, Binary, b""),
        MaskError::BadLength {
            family: Int2,
            expected: 2
        }
    );
    assert_eq!(
        hash_err(Uuid, Binary, &[0; 15]),
        MaskError::BadLength {
            family: Uuid,
            expected: 16
        }
    );
    for bad in [
        &b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"[..],
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
        b"a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
        b"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
        b"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        b"",
    ] {
        assert_eq!(
            hash_err(Uuid, T, bad),
            MaskError::BadUuid,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    for bad in [
        &b"\\x0"[..],
        b"\\x0g",
        b"\\x0 1",
        b"\\",
        b"\\q",
        b"\\400",
        b"a\\0",
        b"\\08x",
    ] {
        assert!(
            matches!(hash_err(Bytea, T, bad), MaskError::BadBytea(_)),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn errors_do_not_carry_the_value() {
    let e = hash_err(Family::Int4, Format::Text, b"secret123");
    assert_eq!(
        e.to_string(),
        "a masked int4 value in text format is not a number"
    );
    assert!(!format!("{e:?}").contains("secret"));
    let h = ValueHasher::new(Family::Uuid, Format::Binary, &key());
    assert!(!format!("{h:?}").contains("buf"));
}

#[test]
fn key_is_not_printed() {
    let printed = format!("{:?}", key());
    assert_eq!(printed, "HashKey(..)");
    assert!(!printed.contains("0123"));
}

#[test]
fn different_keys_and_families_hash_differently() {
    let mut a = Vec::new();
    let mut b = Vec::new();
    mask_value(
        MaskAction::Hash,
        Family::Text,
        Format::Text,
        &key(),
        Some(b"1"),
        &mut a,
    )
    .unwrap();
    mask_value(
        MaskAction::Hash,
        Family::Text,
        Format::Text,
        &HashKey::new([7; 32]),
        Some(b"1"),
        &mut b,
    )
    .unwrap();
    assert_ne!(a, b);
    // '1'::text and '\x31'::bytea have the same bytes but are different domains.
    let t = hash(Family::Text, Format::Binary, b"1");
    let y = hash(Family::Bytea, Format::Binary, b"1");
    assert_ne!(t[..16], y[..]);
}

/// Feeds `value` split at every offset (and byte by byte) and checks it hashes as whole.
fn streams_like_whole(family: Family, format: Format, value: &[u8]) {
    let whole = mask_value(
        MaskAction::Hash,
        family,
        format,
        &key(),
        Some(value),
        &mut Vec::new(),
    )
    .map(|_| hash(family, format, value));
    for cut in 0..=value.len() {
        let mut h = ValueHasher::new(family, format, &key());
        let mut out = Vec::new();
        let got = h
            .update(&value[..cut])
            .and_then(|()| h.update(&value[cut..]))
            .and_then(|()| h.finish(&mut out))
            .map(|()| out);
        assert_eq!(got, whole, "{family} {format} cut at {cut}");
    }
    let mut h = ValueHasher::new(family, format, &key());
    let mut out = Vec::new();
    let got = value
        .iter()
        .try_for_each(|b| h.update(std::slice::from_ref(b)))
        .and_then(|()| h.finish(&mut out))
        .map(|()| out);
    assert_eq!(got, whole, "{family} {format} byte by byte");
}

#[test]
fn pieces_hash_like_the_whole_value() {
    use Family::*;
    use Format::{Binary, Text as T};
    streams_like_whole(Text, T, "Zoë 日本".as_bytes());
    streams_like_whole(Int4, T, b"-123456");
    streams_like_whole(Int4, T, b"12a");
    streams_like_whole(Int8, Binary, &(-5i64).to_be_bytes());
    streams_like_whole(Int4, Binary, b"\0\0\x01");
    streams_like_whole(Uuid, T, b"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}");
    streams_like_whole(Uuid, Binary, &[9; 16]);
    streams_like_whole(Bytea, T, b"\\x00 01 5C27fffe616263");
    streams_like_whole(Bytea, T, b"\\000\\001\\\\'\\377\\376abc\\\\");
    streams_like_whole(Bytea, T, b"\\x0");
    let long: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let long_hex: Vec<u8> = std::iter::once(b"\\x".to_vec())
        .chain(long.iter().map(|b| format!("{b:02x}").into_bytes()))
        .flatten()
        .collect();
    streams_like_whole(Bytea, T, &long_hex);
    assert_eq!(
        hash(Bytea, T, &long_hex),
        hash(Bytea, T, &{
            let mut esc = Vec::new();
            for b in &long {
                esc.extend_from_slice(format!("\\{b:03o}").as_bytes());
            }
            esc
        })
    );
}

#[test]
fn a_failed_hasher_stays_failed() {
    let mut h = ValueHasher::new(Family::Int4, Format::Text, &key());
    assert!(h.update(b"1x").is_err());
    assert_eq!(
        h.update(b"2"),
        Err(MaskError::NotANumber {
            family: Family::Int4
        })
    );
    let mut out = Vec::new();
    assert!(h.finish(&mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn write_int_matches_to_string() {
    for v in [
        0,
        1,
        -1,
        9,
        10,
        -10,
        12345,
        i64::MIN,
        i64::MAX,
        i64::MIN + 1,
    ] {
        let mut out = Vec::new();
        write_int(&mut out, v);
        assert_eq!(out, v.to_string().into_bytes());
    }
}
