//! `pgate-compile check POLICY`: parse, resolve and verify; print diagnostics.
use std::process::ExitCode;

use super::{CheckArgs, diagnostics_exit, print_diagnostics, usage_error};

pub fn run(args: &CheckArgs) -> ExitCode {
    let c = match crate::compile_path(&args.policy) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let mut extra = serde_json::Map::new();
    if let Some(p) = &c.policy {
        extra.insert("roles".into(), p.roles.len().into());
        let tables = p.catalog.tables.len() + p.catalog.aliases.len();
        extra.insert("tables".into(), tables.into());
        extra.insert("table_classes".into(), p.catalog.tables.len().into());
        extra.insert("rules".into(), p.rules.len().into());
    }
    print_diagnostics(&c.diagnostics, &c.sources, args.format, extra);
    let code = diagnostics_exit(&c.diagnostics, args.deny_warnings);
    if args.format == crate::diag::DiagFormat::Human
        && code == super::EXIT_OK
        && let Some(p) = &c.policy
    {
        eprintln!(
            "policy ok: {} roles, {} tables ({} decision classes), {} rules, {} tests",
            p.roles.len(),
            p.catalog.tables.len() + p.catalog.aliases.len(),
            p.catalog.tables.len(),
            p.rules.len(),
            c.model.tests.len()
        );
    }
    ExitCode::from(code)
}
