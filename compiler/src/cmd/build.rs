//! `pgate-compile build POLICY -o FILE`: compile, verify, write the table atomically.
use std::process::ExitCode;

use super::{BuildArgs, EXIT_OK, EXIT_USAGE, diagnostics_exit, print_diagnostics, usage_error};
use crate::diag::DiagFormat;

pub fn run(args: &BuildArgs) -> ExitCode {
    let c = match crate::compile_path(&args.policy) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let mut code = diagnostics_exit(&c.diagnostics, args.deny_warnings);
    let mut extra = serde_json::Map::new();
    let mut written = None;
    if code == EXIT_OK
        && let Some(bytes) = c.table_bytes()
    {
        match crate::write_atomically(&args.output, &bytes) {
            Ok(()) => {
                extra.insert("output".into(), args.output.display().to_string().into());
                extra.insert("bytes".into(), bytes.len().into());
                written = Some(bytes.len());
            }
            Err(e) => {
                code = EXIT_USAGE;
                if args.format == DiagFormat::Human {
                    eprintln!("error: cannot write `{}`: {e}", args.output.display());
                }
                extra.insert(
                    "io_error".into(),
                    format!("cannot write `{}`: {e}", args.output.display()).into(),
                );
            }
        }
    }
    print_diagnostics(&c.diagnostics, &c.sources, args.format, extra);
    if args.format == DiagFormat::Human
        && let Some(n) = written
    {
        let digest: String = c.sources.digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        eprintln!(
            "wrote {} ({n} bytes, source digest {digest}…)",
            args.output.display()
        );
    }
    if code == EXIT_USAGE && args.format != DiagFormat::Human {
        eprintln!("error: cannot write `{}`", args.output.display());
    }
    ExitCode::from(code)
}
