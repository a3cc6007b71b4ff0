//! End-to-end tests of the `pgate-compile` binary on the fixtures in `tests/fixtures/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgate-compile"));
    c.env("NO_COLOR", "1");
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run pgate-compile")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not json ({e}): {}", stdout(o)))
}

#[test]
fn every_error_fixture_fails_with_its_code() {
    let dir = fixtures().join("errors");
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let expected = format!("pgate::{stem}");
        let o = run(&["check", path.to_str().unwrap(), "--format", "json"]);
        assert_eq!(code(&o), 1, "{stem}: {}{}", stdout(&o), stderr(&o));
        let doc = json(&o);
        assert_eq!(doc["ok"], false);
        let diags = doc["diagnostics"].as_array().unwrap();
        let d = diags
            .iter()
            .find(|d| d["code"] == expected.as_str())
            .unwrap_or_else(|| panic!("{stem}: no {expected} in {doc}"));
        assert_eq!(d["severity"], "error");
        assert!(d["line"].as_u64().unwrap() > 0, "{stem}: {d}");
        assert!(d["column"].as_u64().unwrap() > 0, "{stem}: {d}");
        assert_eq!(d["file"], path.file_name().unwrap().to_str().unwrap());
        let msg = d["message"].as_str().unwrap();
        assert!(
            msg.chars().next().is_some_and(|c| !c.is_uppercase()),
            "{stem}: messages are lowercase: {msg}"
        );
        seen += 1;
    }
    assert!(seen >= 15, "only {seen} error fixtures");
}

#[test]
fn suggestions_name_the_closest_declared_name() {
    let o = run(&[
        "check",
        fixtures()
            .join("errors/unknown-table.kdl")
            .to_str()
            .unwrap(),
        "--format",
        "json",
    ]);
    let doc = json(&o);
    assert_eq!(
        doc["diagnostics"][0]["help"],
        "did you mean `public.customers`?"
    );
    assert_eq!(doc["diagnostics"][0]["line"], 10);
    assert_eq!(doc["diagnostics"][0]["column"], 20);
}

#[test]
fn human_output_shows_source_and_code() {
    let o = run(&[
        "check",
        fixtures()
            .join("errors/unknown-column.kdl")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(err.contains("pgate::unknown-column"), "{err}");
    assert!(err.contains("columns \"totl\""), "{err}");
    assert!(err.contains("did you mean `total`?"), "{err}");
    assert!(err.contains("1 error, 0 warnings"), "{err}");
}

#[test]
fn github_format_is_one_annotation_per_line() {
    let o = run(&[
        "check",
        fixtures()
            .join("errors/inheritance-cycle.kdl")
            .to_str()
            .unwrap(),
        "--format",
        "github",
    ]);
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.starts_with("::error file=") || l.starts_with("::warning file="),
            "{l}"
        );
        assert!(l.contains(",line=") && l.contains(",col="), "{l}");
        let (props, msg) = l.trim_start_matches("::").split_once("::").unwrap();
        assert!(props.contains("inheritance-cycle.kdl"), "{props}");
        assert!(!msg.is_empty());
    }
    assert!(out.contains("pgate::inheritance-cycle"), "{out}");

    let o = run(&[
        "check",
        fixtures().join("warnings/warnings.kdl").to_str().unwrap(),
        "--format",
        "github",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).lines().all(|l| l.starts_with("::warning file=")));
}

#[test]
fn warnings_do_not_fail_unless_denied() {
    let path = fixtures().join("warnings/warnings.kdl");
    let o = run(&["check", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code(&o), 0);
    let doc = json(&o);
    let codes: Vec<&str> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    for c in [
        "pgate::redundant-rule",
        "pgate::shadowed-rule",
        "pgate::allow-deny-overlap",
    ] {
        assert!(codes.contains(&c), "{c} missing: {codes:?}");
    }
    let o = run(&["check", path.to_str().unwrap(), "--deny-warnings"]);
    assert_eq!(code(&o), 1);
}

#[test]
fn missing_paths_are_usage_errors() {
    let missing = fixtures().join("does-not-exist");
    let m = missing.to_str().unwrap();
    assert_eq!(code(&run(&["check", m])), 2);
    assert_eq!(code(&run(&["build", m, "-o", "/tmp/never.pgt"])), 2);
    assert_eq!(code(&run(&["test", m])), 2);
    assert_eq!(
        code(&run(&[
            "explain", "--policy", m, "--role", "a", "--sql", "select 1"
        ])),
        2
    );
    // Bad arguments too.
    assert_eq!(code(&run(&["check"])), 2);
    assert_eq!(code(&run(&["check", m, "--format", "xml"])), 2);
}

#[test]
fn ok_policy_checks_clean() {
    let o = run(&[
        "check",
        fixtures().join("ok").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let doc = json(&o);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["errors"], 0);
    assert_eq!(doc["roles"], 2);
}

fn copy_dir_reversed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries.reverse();
    for p in entries {
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir_reversed(&p, &dest);
        } else {
            std::fs::write(&dest, std::fs::read(&p).unwrap()).unwrap();
        }
    }
}

#[test]
fn build_is_deterministic_and_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("ok");
    let a = tmp.path().join("a.pgt");
    let b = tmp.path().join("b.pgt");
    let c = tmp.path().join("c.pgt");
    let o = run(&["build", src.to_str().unwrap(), "-o", a.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&["build", src.to_str().unwrap(), "-o", b.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    // A copy whose files were created in the opposite order, at another path.
    let copy = tmp.path().join("elsewhere/policy");
    copy_dir_reversed(&src, &copy);
    let o = run(&["build", copy.to_str().unwrap(), "-o", c.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    let (ba, bb, bc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert!(!ba.is_empty(), "the writer produced no bytes");
    assert_eq!(ba, bb);
    assert_eq!(ba, bc);
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    // The table the binary wrote loads in the data plane's reader.
    pgate_core::table::Table::parse(&ba).expect("table loads");
}

#[test]
fn build_with_errors_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.pgt");
    let o = run(&[
        "build",
        fixtures()
            .join("errors/unknown-table.kdl")
            .to_str()
            .unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(!out.exists());
}

#[test]
fn test_command_fails_when_no_tests_ran() {
    let o = run(&["test", fixtures().join("warnings").to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0 passed, 0 failed"), "{}", stdout(&o));
}

#[test]
fn test_command_runs_fixture_tests() {
    // Needs the real SQL classifier.
    let o = run(&["test", fixtures().join("ok").to_str().unwrap()]);
    let out = stdout(&o);
    assert!(out.contains("3 passed, 0 failed"), "{out}{}", stderr(&o));
    assert_eq!(code(&o), 0);
    assert!(out.contains("PASS analyst cannot read ssn"), "{out}");
    // The transaction/session allow is exercised by no test.
    assert!(out.contains("rules no test exercised:"), "{out}");
    assert!(out.contains("allow \"transaction\" \"session\""), "{out}");
}

#[test]
fn explain_json_has_the_documented_fields() {
    let o = run(&[
        "explain",
        "--policy",
        fixtures().join("ok").to_str().unwrap(),
        "--role",
        "analyst",
        "--sql",
        "select id, total from orders",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    for k in ["verdict", "rule", "reason", "statements"] {
        assert!(doc.get(k).is_some(), "{k} missing: {doc}");
    }
    assert!(doc["verdict"] == "allow" || doc["verdict"] == "deny");
}

#[test]
fn explain_names_the_deciding_rule() {
    // Needs the real SQL classifier.
    let o = run(&[
        "explain",
        "--policy",
        fixtures().join("ok").to_str().unwrap(),
        "--role",
        "support",
        "--sql",
        "select ssn from customers",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(doc["verdict"], "deny", "{doc}");
    let st = &doc["statements"][0];
    assert_eq!(st["classes"][0], "select", "{doc}");
    assert_eq!(st["tables"][0], "public.customers", "{doc}");
    assert!(
        st["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().ends_with("ssn"))
    );

    // A whole-row reference reads every column, and is named as one.
    let o = run(&[
        "explain",
        "--policy",
        fixtures().join("ok").to_str().unwrap(),
        "--role",
        "support",
        "--sql",
        "select c from customers c",
    ]);
    assert!(
        stdout(&o).contains("every column of `public.customers` (`c` is a whole-row reference)"),
        "{}",
        stdout(&o)
    );

    let o = run(&[
        "explain",
        "--policy",
        fixtures().join("ok").to_str().unwrap(),
        "--role",
        "support",
        "--sql",
        "update orders set total = 1",
        "--format",
        "json",
    ]);
    let doc = json(&o);
    assert_eq!(doc["verdict"], "allow", "{doc}");
    assert_eq!(doc["rule"], "roles.kdl:18", "{doc}");
}

#[test]
fn explain_reads_a_built_table_and_rejects_unknown_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p.pgt");
    let o = run(&[
        "build",
        fixtures().join("ok").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    let o = run(&[
        "explain",
        "--policy",
        out.to_str().unwrap(),
        "--role",
        "analyst",
        "--sql",
        "select 1",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[
        "explain",
        "--policy",
        out.to_str().unwrap(),
        "--role",
        "analyts",
        "--sql",
        "select 1",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("did you mean `analyst`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explain_takes_the_delegation_chain() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let explain = |act: &[&str], sql: &str| {
        let mut args = vec![
            "explain",
            "--policy",
            policies.to_str().unwrap(),
            "--role",
            "support",
        ];
        let chain = act.join(",");
        if !act.is_empty() {
            args.extend(["--act", chain.as_str()]);
        }
        args.extend(["--sql", sql, "--format", "json"]);
        run(&args)
    };
    let copy = "COPY order_items TO STDOUT";
    let own = explain(&[], copy);
    assert_eq!(code(&own), 0, "{}", stderr(&own));
    let own = json(&own);
    assert_eq!(
        (own["verdict"].as_str(), own["decided_as"].as_str()),
        (Some("allow"), Some("support"))
    );
    let agent = json(&explain(&["support-copilot"], copy));
    assert_eq!(agent["verdict"], "deny");
    assert_eq!(agent["role"], "support");
    assert_eq!(agent["act"], serde_json::json!(["support-copilot"]));
    assert_eq!(
        agent["decided_as"],
        "support [delegated actor=support-copilot]"
    );
    assert_eq!(agent["limits"]["max_rows"], 50);
    assert_eq!(
        agent["limits"]["budgets"],
        serde_json::json!(["2000 rows per hour per identity (roles/support.kdl:42)"])
    );
    assert_eq!(own["limits"]["budgets"], serde_json::json!([]));
    let deep = explain(&["a", "b", "c"], "SELECT 1");
    assert_eq!(code(&deep), 2);
    assert!(
        stderr(&deep).contains("admits a delegation chain of at most 2"),
        "{}",
        stderr(&deep)
    );
}
