//! `pgate-compile explain --policy P --role R --sql S`: the verdict and why.
use std::process::ExitCode;

use super::{EXIT_OK, ExplainArgs, ExplainFormat, usage_error};

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
    let loaded = match super::load_policy(&args.policy) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let table = match loaded.table() {
        Ok(t) => t,
        Err(e) => return usage_error(format!("cannot load the policy table: {e}")),
    };
    let path: Vec<&str> = args.search_path.iter().map(String::as_str).collect();
    match crate::explain::explain(&table, &args.role, &args.act, &sql, &path) {
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
