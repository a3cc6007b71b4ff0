//! `pgate-compile`: parses the command line and hands it to [`pgate_compile::cmd`].
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    pgate_compile::cmd::Cli::parse().run()
}
