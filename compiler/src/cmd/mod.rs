//! The `pgate-compile` commands: argument types (clap derive) and one module per command.
//!
//! Commands print; the library does the work. Exit codes: [`EXIT_OK`] (0), [`EXIT_POLICY`]
//! (1: policy errors or failed tests) and [`EXIT_USAGE`] (2: usage or I/O errors). Commands
//! never panic on input and never write a partial output file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::diag::{self, DiagFormat, Diagnostics, Severity};
use crate::source::Sources;

pub mod build;
pub mod check;
pub mod diff;
pub mod explain;
pub mod replay;
pub mod schema;
pub mod test;

pub const EXIT_OK: u8 = 0;
pub const EXIT_POLICY: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "pgate-compile",
    version,
    about = "Compile, verify, test and explain pgate policies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, resolve and verify a policy (no output file).
    Check(CheckArgs),
    /// Compile a policy into a `.pgt` decision table.
    Build(BuildArgs),
    /// Run the policy's `test` blocks through the data plane's classifier and decide().
    Test(TestArgs),
    /// Explain how a role is decided for a SQL string.
    Explain(ExplainArgs),
    /// Compare two tables: what became more or less permissive, per role.
    Diff(DiffArgs),
    /// Write catalog declarations (`table …`) from a live PostgreSQL database.
    Schema(SchemaArgs),
    /// Decide every statement of an audit log again under a proposed policy: what it
    /// would break and what it would open, per role.
    Replay(ReplayArgs),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Check(a) => check::run(&a),
            Command::Build(a) => build::run(&a),
            Command::Test(a) => test::run(&a),
            Command::Explain(a) => explain::run(&a),
            Command::Diff(a) => diff::run(&a),
            Command::Schema(a) => schema::run(&a),
            Command::Replay(a) => replay::run(&a),
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy: a directory of `.kdl` files or one `.kdl` file.
    pub policy: PathBuf,
    /// Diagnostics format.
    #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
    pub format: DiagFormat,
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub deny_warnings: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Policy: a directory of `.kdl` files or one `.kdl` file.
    pub policy: PathBuf,
    /// Output table file (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Diagnostics format.
    #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
    pub format: DiagFormat,
    /// Treat warnings as errors (exit 1, nothing written).
    #[arg(long)]
    pub deny_warnings: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy: a directory of `.kdl` files or one `.kdl` file (its `test` blocks are run).
    pub policy: PathBuf,
    /// Run the tests against this built `.pgt` instead of compiling the policy.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
    pub format: DiagFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy sources (directory or `.kdl`) or a built `.pgt`.
    #[arg(long)]
    pub policy: PathBuf,
    /// The role to decide for (one claims grant).
    #[arg(long)]
    pub role: String,
    /// The session's RFC 8693 delegation chain (`act`), outermost (current) actor first,
    /// comma-separated: decides as the role's delegated variant for that chain.
    #[arg(long, value_delimiter = ',', value_name = "ACTOR,...")]
    pub act: Vec<String>,
    /// The SQL string (one or more statements).
    #[arg(
        long,
        conflicts_with = "sql_file",
        required_unless_present = "sql_file"
    )]
    pub sql: Option<String>,
    /// Read the SQL from a file.
    #[arg(long)]
    pub sql_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
    pub format: ExplainFormat,
    /// The session's search_path, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "public")]
    pub search_path: Vec<String>,
}

/// Output format of `diff`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The table (or policy) before.
    pub old: PathBuf,
    /// The table (or policy) after.
    pub new: PathBuf,
    /// Exit 1 when any role became more permissive.
    #[arg(long)]
    pub fail_on_widening: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The proposed policy (sources or a built `.pgt`).
    #[arg(long)]
    pub policy: PathBuf,
    /// The audit log (pgate's JSON lines; rotated files may be given one after another).
    #[arg(long, required = true)]
    pub audit: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Exit 1 when any statement would change verdict.
    #[arg(long)]
    pub fail_on_change: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// PostgreSQL connection string (`postgres://…`).
    #[arg(long)]
    pub from: String,
    /// Write to this file instead of standard output.
    #[arg(short, long, conflicts_with = "output_dir")]
    pub output: Option<PathBuf>,
    /// Write files `catalog-NNN.kdl` of at most 10,000 tables each into this directory
    /// (removing older `catalog-NNN.kdl` files there): for a catalog larger than one
    /// policy file may be (16 MiB).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Only these schemas (repeatable or comma-separated).
    #[arg(long = "schema", value_delimiter = ',')]
    pub schemas: Vec<String>,
}

/// Whether stderr gets colours.
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints diagnostics in `format` (human → stderr; json, github → stdout). `extra` fields
/// are merged into the JSON document.
pub fn print_diagnostics(
    diags: &Diagnostics,
    sources: &Sources,
    format: DiagFormat,
    extra: serde_json::Map<String, serde_json::Value>,
) {
    match format {
        DiagFormat::Human => {
            eprint!("{}", diag::render_human(diags, sources, color()));
            if !diags.items.is_empty() {
                eprintln!("{}", diag::summary(diags));
            }
        }
        DiagFormat::Json => {
            let mut doc = diag::render_json(diags, sources);
            if let Some(obj) = doc.as_object_mut() {
                obj.extend(extra);
            }
            println!("{doc}");
        }
        DiagFormat::Github => print!("{}", diag::render_github(diags, sources)),
    }
}

/// Exit code for diagnostics.
pub fn diagnostics_exit(diags: &Diagnostics, deny_warnings: bool) -> u8 {
    if diags.has_errors() || (deny_warnings && diags.count(Severity::Warning) > 0) {
        EXIT_POLICY
    } else {
        EXIT_OK
    }
}

/// The table of `--policy` (sources or a built `.pgt`); on failure, the diagnostics or
/// the error are reported and the exit code returned.
pub fn load_policy(policy: &std::path::Path) -> Result<crate::PolicyTable, ExitCode> {
    match crate::load_table(policy) {
        Ok(t) => Ok(t),
        Err(crate::Error::Policy { .. }) => {
            if let Ok(c) = crate::compile_path(policy) {
                print_diagnostics(
                    &c.diagnostics,
                    &c.sources,
                    DiagFormat::Human,
                    Default::default(),
                );
            }
            Err(ExitCode::from(EXIT_POLICY))
        }
        Err(e) => Err(usage_error(e)),
    }
}

/// Reports a usage or I/O error and returns [`EXIT_USAGE`].
pub fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}
