//! `pgate-compile test POLICY`: run the `test` blocks through the data plane's path.
use std::process::ExitCode;

use pgate_core::table::Table;

use super::{EXIT_OK, EXIT_POLICY, TestArgs, print_diagnostics, usage_error};
use crate::diag::{DiagFormat, github_escape_data, github_escape_property};
use crate::runner::{self, TestRun};

pub fn run(args: &TestArgs) -> ExitCode {
    let c = match crate::compile_path(&args.policy) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    if c.has_errors() || args.format != DiagFormat::Json {
        let format = if c.has_errors() {
            args.format
        } else {
            DiagFormat::Human
        };
        if c.has_errors() || !c.diagnostics.items.is_empty() {
            print_diagnostics(&c.diagnostics, &c.sources, format, Default::default());
        }
    }
    if c.has_errors() {
        return ExitCode::from(EXIT_POLICY);
    }
    let bytes = match &args.table {
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return usage_error(format!("cannot read `{}`: {e}", path.display())),
        },
        None => match c.table_bytes() {
            Some(b) => b,
            None => return ExitCode::from(EXIT_POLICY),
        },
    };
    let table = match Table::parse(&bytes) {
        Ok(t) => t,
        Err(e) => return usage_error(format!("cannot load the policy table: {e}")),
    };
    if args.table.is_some() && table.source_digest() != c.sources.digest {
        eprintln!(
            "warning: the table was built from different sources than `{}`",
            args.policy.display()
        );
    }
    let run = runner::run(&c.model.tests, &c.sources, &table);
    print_run(&run, args);
    if run.results.is_empty() {
        if args.format != DiagFormat::Json {
            eprintln!("error: no tests ran; add `test` blocks to the policy");
        }
        return ExitCode::from(EXIT_POLICY);
    }
    ExitCode::from(if run.failed() == 0 {
        EXIT_OK
    } else {
        EXIT_POLICY
    })
}

fn print_run(run: &TestRun, args: &TestArgs) {
    match args.format {
        DiagFormat::Json => {
            let doc = serde_json::json!({
                "passed": run.passed(),
                "failed": run.failed(),
                "results": run.results,
                "unexercised": run.unexercised,
            });
            println!("{doc}");
        }
        DiagFormat::Human | DiagFormat::Github => {
            for r in &run.results {
                let rule = r
                    .rule
                    .as_deref()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                if r.passed {
                    println!("PASS {} ({}:{}){rule}", r.name, r.file, r.line);
                } else {
                    let mut msg = format!("expected {}, got {}", r.expected, r.actual);
                    if let Some(e) = &r.expected_rule {
                        msg.push_str(&format!(
                            " (expected rule {e}, deciding rule {})",
                            r.rule.as_deref().unwrap_or("none")
                        ));
                    }
                    msg.push_str(&format!(": {}", r.reason));
                    println!("FAIL {} ({}:{}): {msg}", r.name, r.file, r.line);
                    if args.format == DiagFormat::Github {
                        let file = if args.policy.is_dir() {
                            args.policy.join(&r.file).display().to_string()
                        } else {
                            args.policy.display().to_string()
                        };
                        println!(
                            "::error file={},line={},col={},title=pgate::test-failed::{}",
                            github_escape_property(&file),
                            r.line,
                            r.column,
                            github_escape_data(&format!("test `{}` failed: {msg}", r.name))
                        );
                    }
                }
            }
            if !run.unexercised.is_empty() {
                println!("rules no test exercised:");
                for u in &run.unexercised {
                    println!(
                        "  {}:{}:{} [{}] {}",
                        u.file, u.line, u.column, u.role, u.text
                    );
                }
            }
            println!("{} passed, {} failed", run.passed(), run.failed());
        }
    }
}
