//! A table is loaded only if every rule in it is enforced: a rule the data plane does not
//! enforce makes it refuse the table, naming the rule; so does a `hash` mask without a key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

fn table_of(policy: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("policy.kdl");
    std::fs::write(&src, policy).unwrap();
    let t = pgate_compile::load_table(&src).expect("the policy compiles");
    let out = dir.path().join("policy.pgt");
    std::fs::write(&out, &t.bytes).unwrap();
    (dir, out)
}

const BASE: &str = r#"
table "public.customers" { columns "id" "email"; }
role "analyst" {
    member claim="groups" value="analysts"
    allow "select" table="public.customers"
"#;

#[test]
fn access_rules_and_limits_load() {
    let (_d, path) = table_of(&format!("{BASE}    limit rows=10 bytes=\"1MiB\"\n}}\n"));
    let t = pgate::reload::load_table(&path, false).expect("loads");
    assert!(pgate::reload::refuse_unenforced(&t.table(), false).is_ok());
}

#[test]
fn a_hash_mask_without_a_key_is_refused_at_load_naming_its_rule() {
    let policy =
        format!("{BASE}    mask table=\"public.customers\" column=\"email\" with=\"hash\"\n}}\n");
    let (_d, path) = table_of(&policy);
    let err = pgate::reload::load_table(&path, false)
        .err()
        .expect("refused");
    assert!(err.contains("hash"), "{err}");
    assert!(err.contains("policy.kdl:6"), "{err}");
    assert!(err.contains("hash-key-file"), "{err}");
    // With a key, the same table loads: masks are enforced.
    assert!(pgate::reload::load_table(&path, true).is_ok());
}

#[test]
fn redact_and_null_masks_need_no_key() {
    for with in ["redact", "null"] {
        let policy = format!(
            "{BASE}    mask table=\"public.customers\" column=\"email\" with=\"{with}\"\n}}\n"
        );
        let (_d, path) = table_of(&policy);
        assert!(pgate::reload::load_table(&path, false).is_ok(), "{with}");
    }
}

#[test]
fn hash_key_material_must_be_long_enough() {
    assert!(pgate::masks::hash_key_from(b"short\n").is_err());
    assert!(pgate::masks::hash_key_from(&[b'k'; 32]).is_ok());
}

#[test]
fn limits_and_rates_load() {
    let policy = format!("{BASE}    limit rows=10\n    rate bytes=\"1MiB\" per=\"second\"\n}}\n");
    let (_d, path) = table_of(&policy);
    assert!(pgate::reload::load_table(&path, false).is_ok());
}

/// Decides `sql` for the analyst of the table at `path`.
fn allowed(path: &std::path::Path, sql: &str) -> bool {
    use pgate_core::facts::Facts;
    use pgate_core::sql::{ClassifyContext, classify};
    let t = pgate::reload::load_table(path, true).unwrap();
    let table = t.table();
    let role = table.role("analyst").unwrap();
    let mut facts = Facts::default();
    let ctx = ClassifyContext {
        search_path: &["public"],
        catalog: None,
        ..ClassifyContext::default()
    };
    classify(sql, &ctx, &mut facts);
    table.decide_all(role, &facts).is_allow()
}

#[test]
fn a_mask_may_allow_predicates_and_nothing_else() {
    let policy = format!(
        "{BASE}    mask table=\"public.customers\" column=\"email\" with=\"hash\" predicates=\"allow\"\n    mask table=\"public.customers\" column=\"id\" with=\"hash\"\n}}\n"
    );
    let (_d, path) = table_of(&policy);
    assert!(allowed(&path, "SELECT email FROM customers"));
    // The email's mask allows predicates: filtering and joining on it.
    assert!(allowed(
        &path,
        "SELECT id FROM customers WHERE email = 'a@b.c'"
    ));
    assert!(allowed(
        &path,
        "SELECT a.id FROM customers a JOIN customers b ON a.email = b.email"
    ));
    // Still not an expression in the output, a sort or a grouping.
    assert!(!allowed(&path, "SELECT lower(email) FROM customers"));
    assert!(!allowed(
        &path,
        "SELECT email FROM customers ORDER BY email"
    ));
    assert!(!allowed(
        &path,
        "SELECT email, count(*) FROM customers GROUP BY email"
    ));
    // The id's mask does not.
    assert!(!allowed(&path, "SELECT email FROM customers WHERE id = 1"));
}
