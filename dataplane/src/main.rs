//! pgate: the data plane. The proxy itself is built in its own issue; until then this
//! binary only validates a decision table, so operators can check what they will deploy.
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("check-table"), Some(path)) => {
            match pgate_core::table::TableFile::open(std::path::Path::new(&path)) {
                Ok(_) => {
                    println!("{path}: ok");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pgate: {path}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        _ => {
            eprintln!("usage: pgate check-table FILE.pgt (the proxy is not built yet)");
            ExitCode::from(2)
        }
    }
}
