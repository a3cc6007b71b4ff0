//! `pgate-compile explain --policy P --role R --sql S`: the verdict and why.
use std::process::ExitCode;

use super::{EXIT_OK, EXIT_POLICY, ExplainArgs, ExplainFormat, print_diagnostics, usage_error};
use crate::diag::DiagFormat;

/// Largest SQL file accepted.
const MAX_SQL_BYTES: u64 = 1024 * 1024;

pub fn run(args: &ExplainArgs) -> ExitCode {
    let sql = match (&args.sql, &args.sql_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => {
            match std::fs::metadata(path) {
                Ok(m) if m.len() > MAX_SQL_BYTES => {
                    return usage_error(format!(
                        "`{}` is larger than {MAX_SQL_BYTES} bytes",
                        path.display()
                    ));
                }
                Ok(_) => {}
                Err(e) => return usage_error(format!("cannot read `{}`: {e}", path.display())),
            }
            match std::fs::read_to_string(path) {
                Ok(s) => s,
                Err(e) => return usage_error(format!("cannot read `{}`: {e}", path.display())),
            }
        }
        (None, None) => return usage_error("give `--sql` or `--sql-file`"),
    };
    let loaded = match crate::load_table(&args.policy) {
        Ok(t) => t,
        Err(crate::Error::Policy { .. }) => {
            if let Ok(c) = crate::compile_path(&args.policy) {
                print_diagnostics(
                    &c.diagnostics,
                    &c.sources,
                    DiagFormat::Human,
                    Default::default(),
                );
            }
            return ExitCode::from(EXIT_POLICY);
        }
        Err(e) => return usage_error(e),
    };
    let table = match loaded.table() {
        Ok(t) => t,
        Err(e) => return usage_error(format!("cannot load the policy table: {e}")),
    };
    let path: Vec<&str> = args.search_path.iter().map(String::as_str).collect();
    match crate::explain::explain(&table, &args.role, &sql, &path) {
        Ok(e) => {
            match args.format {
                ExplainFormat::Human => print!("{}", crate::explain::render_human(&e)),
                ExplainFormat::Json => match serde_json::to_string_pretty(&e) {
                    Ok(s) => println!("{s}"),
                    Err(err) => return usage_error(err),
                },
            }
            ExitCode::from(EXIT_OK)
        }
        Err(e) => usage_error(e),
    }
}
