//! `pgate-compile replay --policy NEW --audit audit.jsonl`: the statements of a real audit
//! log whose verdict the proposed policy would change.
use std::io::BufRead;
use std::process::ExitCode;

use super::{EXIT_OK, EXIT_POLICY, OutputFormat, ReplayArgs, usage_error};

pub fn run(args: &ReplayArgs) -> ExitCode {
    let loaded = match super::load_policy(&args.policy) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let table = match loaded.table() {
        Ok(t) => t,
        Err(e) => return usage_error(format!("cannot load the policy table: {e}")),
    };
    let mut readers: Vec<Box<dyn BufRead>> = Vec::new();
    for path in &args.audit {
        match std::fs::File::open(path) {
            Ok(f) => readers.push(Box::new(std::io::BufReader::new(f))),
            Err(e) => return usage_error(format!("cannot read `{}`: {e}", path.display())),
        }
    }
    let all = readers
        .into_iter()
        .reduce(|a, b| Box::new(std::io::Read::chain(a, b)) as Box<dyn BufRead>);
    let Some(all) = all else {
        return usage_error("give at least one `--audit` file");
    };
    let report = match crate::replay::replay(&table, all) {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    match args.format {
        OutputFormat::Human => print!("{}", crate::replay::render_human(&report)),
        OutputFormat::Markdown => print!("{}", crate::replay::render_markdown(&report)),
        OutputFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return usage_error(e),
        },
    }
    if args.fail_on_change && report.changes() > 0 {
        ExitCode::from(EXIT_POLICY)
    } else {
        ExitCode::from(EXIT_OK)
    }
}
