//! Smoke test of the pgate-loadtest binary against the PostgreSQL that ci/test.sh starts
//! (`PGATE_TEST_DATABASE_URL`, SCRAM over TCP): every workload for about a second, `--json`,
//! and the report's shape and success checked. Also md5 and verified TLS when the cluster
//! is lib.sh's (`PGATE_TEST_PG_CA` set). Skipped without the variable unless `CI` is set.
//!
//! It creates its own database (`pgate_loadtest_smoke`) with a small pgbench_accounts table,
//! so it never touches what other tests use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

const DB: &str = "pgate_loadtest_smoke";

fn database_url() -> Option<String> {
    match std::env::var("PGATE_TEST_DATABASE_URL") {
        Ok(u) => Some(u),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PGATE_TEST_DATABASE_URL is not set (ci/test.sh sets it)")
        }
        Err(_) => {
            eprintln!("skipped: PGATE_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// The URL with its database replaced.
fn with_db(url: &str, db: &str) -> String {
    let after_scheme = url.find("://").unwrap() + 3;
    match url[after_scheme..].find('/') {
        Some(i) => format!("{}/{db}", &url[..after_scheme + i]),
        None => format!("{url}/{db}"),
    }
}

async fn prepare_database(url: &str) {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PGATE_TEST_DATABASE_URL");
    tokio::spawn(conn);
    // Already there from an earlier run (or a concurrent one): fine.
    let _ = c.batch_execute(&format!("CREATE DATABASE {DB}")).await;
    let (c, conn) = tokio_postgres::connect(&with_db(url, DB), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS pgbench_accounts \
             (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
         INSERT INTO pgbench_accounts \
             SELECT g, 1, 0, '' FROM generate_series(1, 100000) g ON CONFLICT DO NOTHING;
         GRANT SELECT ON pgbench_accounts TO PUBLIC;",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn every_workload_runs_and_reports_json() {
    let Some(url) = database_url() else { return };
    prepare_database(&url).await;

    let direct = with_db(&url, DB);
    let mut args = vec![
        "--target".to_string(),
        format!("direct={direct}?sslmode=disable"),
    ];
    if let Ok(ca) = std::env::var("PGATE_TEST_PG_CA") {
        args.push("--target".into());
        args.push(format!("tls={direct}?sslrootcert={ca}"));
        // lib.sh's md5 user; its password comes through the environment, as bench.sh's do.
        let host = &direct[direct.find('@').unwrap() + 1..];
        args.push("--target".into());
        args.push(format!("md5=postgres://pgate_md5@{host}?sslmode=disable"));
    }
    args.extend(
        [
            "--duration",
            "0.3",
            "--warmup",
            "0.05",
            "--rounds",
            "1",
            "--connections",
            "2",
            "--stream-rows",
            "2000",
            "--json",
            "--proxy-pid",
        ]
        .map(String::from),
    );
    // Any readable process will do to exercise the CPU accounting: this test itself.
    args.push(format!("direct={}", std::process::id()));

    let out = Command::new(env!("CARGO_BIN_EXE_pgate-loadtest"))
        .args(&args)
        .env("PGATE_LOADTEST_PASSWORD_MD5", "pgate-test-md5")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(report["version"], 1);
    let targets = report["config"]["targets"].as_array().unwrap().len();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 6 * targets, "every workload × target");
    for r in results {
        let what = format!("{} {}", r["workload"], r["target"]);
        assert!(r["ops"].as_u64().unwrap() > 0, "{what}: no queries");
        assert_eq!(r["errors"], 0, "{what}: {}", r["first_error"]);
        assert!(r["throughput"].as_f64().unwrap() > 0.0, "{what}");
        let l = &r["latency_us"];
        let p = |k: &str| l[k].as_f64().unwrap();
        assert!(p("p50") > 0.0, "{what}");
        assert!(p("p50") <= p("p90") && p("p90") <= p("p99"), "{what}: {l}");
        assert!(
            p("p99") <= p("p999") && p("p999") <= p("max") * 1.001,
            "{what}: {l}"
        );
        assert!(r["ratio_to_first"]["throughput"].is_number(), "{what}");
        assert!(r["client_cpu_s_per_10k"].is_number(), "{what}");
        let wl = r["workload"].as_str().unwrap();
        if wl == "stream" {
            assert!(r["mb_per_s"].as_f64().unwrap() > 0.0);
            assert_eq!(
                r["rows"].as_u64().unwrap() % 2000,
                0,
                "{what}: whole results"
            );
        }
        if r["target"] == "direct" {
            assert_eq!(r["ratio_to_first"]["throughput"], 1.0);
            assert!(r["proxy_cpu_s_per_10k"].is_number(), "{what}");
        } else {
            assert!(r["proxy_cpu_s_per_10k"].is_null(), "{what}");
        }
    }
}
