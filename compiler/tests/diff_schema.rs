//! End-to-end tests of `pgate-compile diff` and `pgate-compile schema`.
//!
//! The diff tests build the fixture policies in `tests/fixtures/diff/` with the real `build`
//! command and compare the tables. The schema integration test needs a PostgreSQL server
//! and runs only when `PGATE_TEST_DATABASE_URL` is set (ci/test.sh starts one); without it
//! the test passes after printing that it was skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_pgate-compile")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diff")
        .join(name)
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(exe())
        .args(args)
        .output()
        .expect("run pgate-compile")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Builds a fixture policy into `dir/<name>.pgt`.
fn build(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.pgt"));
    let o = run(&[
        "build".as_ref(),
        fixture(name).as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        o.status.success(),
        "build {name} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    out
}

fn diff(old: &Path, new: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref(), old.as_os_str(), new.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run(&args)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("diff output is not JSON ({e}): {}", text(&o.stdout)))
}

fn changes<'a>(doc: &'a serde_json::Value, role: &str) -> &'a Vec<serde_json::Value> {
    doc["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["role"] == role)
        .unwrap_or_else(|| panic!("no changes for role {role}: {doc}"))["changes"]
        .as_array()
        .expect("changes")
}

#[test]
fn identical_tables_have_no_differences() {
    let dir = tempfile::tempdir().unwrap();
    let base = build(dir.path(), "base");
    let o = diff(&base, &base, &["--fail-on-widening"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no differences"),
        "{}",
        text(&o.stdout)
    );

    let o = diff(&base, &base, &["--format", "json"]);
    let doc = json(&o);
    assert_eq!(doc["widening"], false);
    assert_eq!(doc["roles"].as_array().map(Vec::len), Some(0));
}

#[test]
fn widening_is_reported_and_fails_ci() {
    let dir = tempfile::tempdir().unwrap();
    let base = build(dir.path(), "base");
    let widened = build(dir.path(), "widened");

    // Without the flag, a widening is reported but does not fail.
    let o = diff(&base, &widened, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let human = text(&o.stdout);
    assert!(human.contains("role analyst: WIDER"), "{human}");
    assert!(
        human.contains("public.customers.ssn: deny → allow"),
        "{human}"
    );
    assert!(human.contains("+ role ai-agent (added)"), "{human}");
    assert!(human.contains("WIDENING"), "{human}");

    let o = diff(&base, &widened, &["--fail-on-widening"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("more permissive"),
        "{}",
        text(&o.stderr)
    );

    let o = diff(&base, &widened, &["--format", "json", "--fail-on-widening"]);
    assert_eq!(o.status.code(), Some(1));
    let doc = json(&o);
    assert_eq!(doc["widening"], true);
    assert_eq!(doc["roles_added"][0]["role"], "ai-agent");
    assert_eq!(doc["roles_removed"].as_array().map(Vec::len), Some(0));

    let analyst = changes(&doc, "analyst");
    let ssn = analyst
        .iter()
        .find(|c| c["kind"] == "column" && c["column"] == "ssn")
        .unwrap_or_else(|| panic!("no ssn change: {analyst:?}"));
    assert_eq!(ssn["class"], "select");
    assert_eq!(ssn["table"], "public.customers");
    assert_eq!(ssn["old"], "deny");
    assert_eq!(ssn["new"], "allow");
    assert_eq!(ssn["direction"], "wider");
    // The deciding rule of the new side, by file and line.
    assert_eq!(ssn["rule"]["file"], "roles.kdl", "{ssn}");
    assert!(ssn["rule"]["line"].as_u64().unwrap_or(0) > 0, "{ssn}");

    let find = |kind: &str| analyst.iter().find(|c| c["kind"] == kind);
    let mask = find("mask").unwrap_or_else(|| panic!("no mask change: {analyst:?}"));
    assert_eq!(mask["old"], "redact");
    assert_eq!(mask["new"], "none");
    assert_eq!(mask["direction"], "wider");
    let rows = find("max-rows").unwrap_or_else(|| panic!("no limit change: {analyst:?}"));
    assert_eq!(rows["old"], "1000");
    assert_eq!(rows["new"], "5000");
    assert_eq!(rows["direction"], "wider");
    let member = find("member").unwrap_or_else(|| panic!("no member change: {analyst:?}"));
    assert_eq!(member["value"], "contractors");
    assert_eq!(member["direction"], "wider");

    // Every class of a changed role has a status; unchanged roles are named, not detailed.
    let analyst_doc = doc["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "analyst")
        .unwrap();
    assert_eq!(analyst_doc["classes"]["select"], "wider");
    assert_eq!(analyst_doc["classes"]["delete"], "unchanged");
    assert_eq!(
        doc["roles_unchanged"],
        serde_json::json!(["legacy", "support"])
    );
    assert!(
        human.contains("unchanged roles: legacy, support"),
        "{human}"
    );
    assert!(
        doc["roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["role"] != "support" && r["role"] != "legacy"),
        "{doc}"
    );

    // Markdown: a PR comment with a summary table and details.
    let o = diff(&base, &widened, &["--format", "markdown"]);
    assert_eq!(o.status.code(), Some(0));
    let md = text(&o.stdout);
    assert!(md.contains("### pgate policy diff"), "{md}");
    assert!(
        md.contains("| role | what | change | wider | narrower |"),
        "{md}"
    );
    assert!(md.contains("| `analyst` | select | 🔺 wider |"), "{md}");
    assert!(md.contains("<details>"), "{md}");
}

#[test]
fn narrowing_does_not_fail_ci() {
    let dir = tempfile::tempdir().unwrap();
    let base = build(dir.path(), "base");
    let narrowed = build(dir.path(), "narrowed");

    let o = diff(
        &base,
        &narrowed,
        &["--fail-on-widening", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let doc = json(&o);
    assert_eq!(doc["widening"], false, "{doc}");
    assert_eq!(doc["roles_removed"][0]["role"], "legacy");
    let support = changes(&doc, "support");
    let classes: Vec<&str> = support
        .iter()
        .filter(|c| c["kind"] == "table" && c["table"] == "public.orders")
        .map(|c| c["class"].as_str().unwrap_or(""))
        .collect();
    assert!(classes.contains(&"copy-out"), "{support:?}");
    assert!(classes.contains(&"update"), "{support:?}");
    assert!(
        support.iter().all(|c| c["direction"] == "narrower"),
        "{support:?}"
    );

    // The other way round the same changes are widenings.
    let o = diff(&narrowed, &base, &["--fail-on-widening"]);
    assert_eq!(o.status.code(), Some(1));
    let human = text(&o.stdout);
    assert!(human.contains("+ role legacy (added)"), "{human}");
    assert!(human.contains("copy-out: wider"), "{human}");
}

#[test]
fn policy_directories_are_compiled_on_the_fly() {
    let o = diff(&fixture("base"), &fixture("widened"), &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(json(&o)["widening"], true);
}

#[test]
fn unreadable_input_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.pgt");
    std::fs::write(&bogus, b"not a table").unwrap();
    let o = diff(&bogus, &bogus, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("bogus.pgt"), "{err}");
}

#[test]
fn schema_connection_failure_is_one_line_exit_2() {
    // Port 1 on localhost: refused immediately.
    let o = run(&[
        "schema".as_ref(),
        "--from".as_ref(),
        "postgres://someone:hunter2@127.0.0.1:1/db".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot connect to "), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
    assert!(err.contains("refused"), "{err}");
    assert!(o.stdout.is_empty());
}

/// Needs a live PostgreSQL: `PGATE_TEST_DATABASE_URL=postgres://user@host:port/db`.
#[test]
fn schema_from_live_database() {
    let Ok(url) = std::env::var("PGATE_TEST_DATABASE_URL") else {
        eprintln!("skipped: PGATE_TEST_DATABASE_URL is not set");
        return;
    };
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let ns = format!("pgate_schema_test_{}", std::process::id());
    let other = format!("{ns}_other");
    let setup = format!(
        r#"
        DROP SCHEMA IF EXISTS {ns} CASCADE;
        DROP SCHEMA IF EXISTS {other} CASCADE;
        CREATE SCHEMA {ns};
        CREATE SCHEMA {other};
        CREATE TABLE {ns}.customers (id bigint PRIMARY KEY, name text, ssn text, created_at timestamptz);
        COMMENT ON COLUMN {ns}.customers.ssn IS 'Social security number. pgate-tags: pii, secret';
        COMMENT ON TABLE {ns}.customers IS 'pgate-tags: pii';
        CREATE TABLE {ns}.orders (id bigint, customer_id bigint, dropped int, total numeric);
        ALTER TABLE {ns}.orders DROP COLUMN dropped;
        CREATE TABLE {ns}."Mixed Case" ("Id" int, "quote""d" text);
        CREATE VIEW {ns}.order_totals AS SELECT customer_id, sum(total) AS total FROM {ns}.orders GROUP BY 1;
        CREATE MATERIALIZED VIEW {ns}.customer_count AS SELECT count(*) AS n FROM {ns}.customers;
        CREATE FUNCTION {ns}.double_it(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
        CREATE FUNCTION {ns}.double_it(x bigint) RETURNS bigint LANGUAGE sql AS 'SELECT x * 2';
        CREATE FUNCTION {ns}.of_row(r {ns}.orders) RETURNS bigint LANGUAGE sql AS 'SELECT r.id';
        CREATE FUNCTION {ns}.padded(x int, y int DEFAULT 0) RETURNS int LANGUAGE sql AS 'SELECT x + y';
        CREATE FUNCTION {ns}.padded(x text) RETURNS text LANGUAGE sql AS 'SELECT x';
        CREATE TABLE {other}.ignored (id int);
        "#
    );
    client.batch_execute(&setup).expect("create test schema");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("schema.kdl");
    let o = run(&[
        "schema".as_ref(),
        "--from".as_ref(),
        url.as_ref(),
        "--schema".as_ref(),
        ns.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let second = run(&[
        "schema".as_ref(),
        "--from".as_ref(),
        url.as_ref(),
        "--schema".as_ref(),
        ns.as_ref(),
    ]);
    let all = run(&["schema".as_ref(), "--from".as_ref(), url.as_ref()]);
    // --output-dir: the same declarations in catalog-NNN.kdl files; a stale generated
    // file goes, other files stay.
    let split = dir.path().join("split");
    std::fs::create_dir_all(&split).unwrap();
    std::fs::write(split.join("catalog-007.kdl"), "table \"stale.t\"\n").unwrap();
    std::fs::write(split.join("roles.kdl"), "// mine\n").unwrap();
    let parts = run(&[
        "schema".as_ref(),
        "--from".as_ref(),
        url.as_ref(),
        "--schema".as_ref(),
        ns.as_ref(),
        "--output-dir".as_ref(),
        split.as_os_str(),
    ]);
    let _ = client.batch_execute(&format!(
        "DROP SCHEMA {ns} CASCADE; DROP SCHEMA {other} CASCADE;"
    ));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let written = std::fs::read_to_string(&out).expect("output file");
    // Deterministic: the same database gives the same bytes.
    assert_eq!(text(&second.stdout), written);
    assert_eq!(parts.status.code(), Some(0), "{}", text(&parts.stderr));
    let mut files: Vec<String> = std::fs::read_dir(&split)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["catalog-000.kdl", "roles.kdl"]);
    let part = std::fs::read_to_string(split.join("catalog-000.kdl")).unwrap();
    let without_part_line: String = part
        .lines()
        .filter(|l| !l.starts_with("// File 1 of 1: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without_part_line, written);

    let doc: kdl::KdlDocument = written.parse().expect("schema output is valid KDL");
    let mut tables = Vec::new();
    let mut functions = Vec::new();
    for node in doc.nodes() {
        let name = node.entries()[0]
            .value()
            .as_string()
            .expect("name")
            .to_string();
        match node.name().value() {
            "table" => {
                let mut cols = Vec::new();
                let mut tags = Vec::new();
                for child in node.children().map(|c| c.nodes()).unwrap_or(&[]) {
                    let values: Vec<String> = child
                        .entries()
                        .iter()
                        .filter_map(|e| e.value().as_string().map(str::to_string))
                        .collect();
                    match child.name().value() {
                        "columns" => cols.extend(values),
                        "column" => {
                            let col_tags: Vec<String> = child
                                .children()
                                .and_then(|c| c.get("tags"))
                                .map(|t| {
                                    t.entries()
                                        .iter()
                                        .filter_map(|e| e.value().as_string().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default();
                            cols.push(format!("{}[{}]", values[0], col_tags.join(",")));
                        }
                        "tags" => tags.extend(values),
                        other => panic!("unexpected node {other}"),
                    }
                }
                tables.push((name, cols, tags));
            }
            "function" => {
                let overloads: Option<Vec<String>> =
                    node.children().and_then(|c| c.get("overloads")).map(|o| {
                        o.entries()
                            .iter()
                            .filter_map(|e| e.value().as_string().map(str::to_string))
                            .collect()
                    });
                functions.push((name, overloads));
            }
            other => panic!("unexpected node {other}"),
        }
    }
    let t = |n: &str| format!("{ns}.{n}");
    let names: Vec<&str> = tables.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        vec![
            t("Mixed Case").as_str(),
            t("customer_count").as_str(),
            t("customers").as_str(),
            t("order_totals").as_str(),
            t("orders").as_str()
        ],
        "sorted, views and materialized views included, other schemas excluded:\n{written}"
    );
    let table = |n: &str| tables.iter().find(|x| x.0 == t(n)).expect("table");
    assert_eq!(
        table("customers").1,
        vec!["id", "name", "ssn[pii,secret]", "created_at"]
    );
    assert_eq!(table("customers").2, vec!["pii"]);
    assert_eq!(
        table("orders").1,
        vec!["id", "customer_id", "total"],
        "dropped column left out"
    );
    assert_eq!(table("Mixed Case").1, vec!["Id", "quote\"d"]);
    assert_eq!(table("order_totals").1, vec!["customer_id", "total"]);
    assert_eq!(table("customer_count").1, vec!["n"]);
    assert!(written.contains("// materialized view\n"), "{written}");
    // Overloads collapse into one name, listing each one's identity arguments (types
    // outside pg_catalog qualified); a name with an overload that has defaults lists none.
    let q = |s: &str| s.replace("NS", &ns);
    assert_eq!(
        functions,
        vec![
            (
                t("double_it"),
                Some(vec!["x bigint".to_string(), "x integer".to_string()])
            ),
            (t("of_row"), Some(vec![q("r NS.orders")])),
            (t("padded"), None),
        ],
        "{written}"
    );

    // Without --schema: system schemas are excluded, user schemas included.
    assert_eq!(all.status.code(), Some(0), "{}", text(&all.stderr));
    let all = text(&all.stdout);
    assert!(!all.contains("\"pg_catalog."), "pg_catalog leaked");
    assert!(
        !all.contains("\"information_schema."),
        "information_schema leaked"
    );
    assert!(all.contains(&format!("table \"{other}.ignored\"")), "{all}");
}

/// Writes one policy file into `dir/name/` and returns the directory.
fn policy_dir(dir: &Path, name: &str, roles: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("p.kdl"),
        format!("table \"public.t\" {{ columns \"id\" \"x\"; }}\n{roles}"),
    )
    .unwrap();
    p
}

#[test]
fn a_delegated_block_is_compared_with_what_decided_its_sessions_before() {
    let dir = tempfile::tempdir().unwrap();
    let role = |extra: &str| {
        format!(
            "role \"a\" {{\n member claim=\"g\" value=\"a\"\n allow \"select\" \"copy-out\" table=\"public.t\"\n{extra}}}\n"
        )
    };
    let plain = policy_dir(dir.path(), "plain", &role(""));
    let narrowed = policy_dir(
        dir.path(),
        "narrowed",
        &role(
            " delegated { deny \"copy-out\" table=\"*\"; limit rows=5; }\n delegation max-depth=1\n",
        ),
    );
    // Adding the block narrows only: not a widening, the variant compared with `a`.
    let o = diff(
        &plain,
        &narrowed,
        &["--format", "json", "--fail-on-widening"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let doc = json(&o);
    assert_eq!(
        doc["roles_added"].as_array().map(Vec::len),
        Some(0),
        "{doc}"
    );
    let v = doc["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "a [delegated]")
        .unwrap_or_else(|| panic!("no variant: {doc}"))
        .clone();
    assert_eq!(v["compared_with"]["role"], "a");
    assert_eq!(v["compared_with"]["variant_is_new"], true);
    let ch = v["changes"].as_array().unwrap();
    assert!(ch.iter().all(|c| c["direction"] == "narrower"), "{ch:?}");
    assert!(
        ch.iter()
            .any(|c| c["class"] == "copy-out" && c["old"] == "allow" && c["new"] == "deny"),
        "{ch:?}"
    );
    let depth = changes(&doc, "a")
        .iter()
        .find(|c| c["kind"] == "delegation-depth")
        .cloned()
        .unwrap_or_else(|| panic!("no depth change: {doc}"));
    assert_eq!(
        (depth["old"].as_str(), depth["new"].as_str()),
        (Some("any"), Some("at most 1"))
    );

    // Removing it again widens, and says so against the role that decides now.
    let o = diff(&narrowed, &plain, &["--fail-on-widening"]);
    assert_eq!(o.status.code(), Some(1));
    let human = text(&o.stdout);
    assert!(
        human.contains("role a [delegated]: WIDER")
            && human.contains("delegated variant removed, compared with `a`"),
        "{human}"
    );
}
