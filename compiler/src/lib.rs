//! pgate-compile: KDL policies → verified, deterministic `.pgt` decision tables.
//!
//! The pipeline, one module per pass:
//!
//! 1. [`source`] — find and read the `.kdl` files (sorted, limited, digested);
//! 2. [`parse`] — KDL → typed [`ast`] with spans;
//! 3. [`resolve`] — names bound, inheritance flattened, rules numbered → [`resolve::Model`];
//! 4. [`combine`] — rules → cells ([`pgate_core::table::model::CompiledPolicy`]);
//! 5. [`verify`] — overlaps, shadowed/redundant rules, masks, invariants (over cells via
//!    [`evaluate`]);
//! 6. [`pgate_core::table::write`] — bytes.
//!
//! [`runner`] runs policy tests and [`explain`] explains a decision, both through exactly
//! the data plane's classifier and `decide()`. [`reference`] is an independent evaluator
//! for property tests. [`cmd`] holds the CLI commands; `main.rs` only dispatches.
//!
//! The library never panics on input, never prints (commands do), and never lets
//! filesystem or hash-map order reach its output.

pub mod ast;
pub mod bits;
pub mod catalog;
pub mod classes;
pub mod cmd;
pub mod combine;
pub mod delegation;
pub mod diag;
pub mod evaluate;
pub mod explain;
pub mod fast_catalog;
pub mod glob;
pub mod parse;
pub mod reference;
pub mod replay;
pub mod resolve;
pub mod runner;
pub mod source;
pub mod verify;

use std::path::{Path, PathBuf};

use pgate_core::table::model::CompiledPolicy;
use pgate_core::table::{LoadError, Table};

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use resolve::Model;
pub use source::{SourceError, Sources, load as load_sources};

/// The result of compiling sources: diagnostics, the model, and — without errors — the
/// compiled policy.
#[derive(Debug)]
pub struct Compilation {
    pub sources: Sources,
    pub diagnostics: Diagnostics,
    pub model: Model,
    /// `Some` iff there are no errors.
    pub policy: Option<CompiledPolicy>,
    /// The policy laid out (`Some` with `policy`).
    table: Option<Vec<u8>>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.has_errors()
    }

    /// The `.pgt` bytes (`None` with errors; compiling reports a policy the format cannot
    /// hold as an error, so a policy without errors always lays out).
    pub fn table_bytes(&self) -> Option<Vec<u8>> {
        self.policy.as_ref().and(self.table.clone())
    }
}

/// Runs every pass over `sources`.
pub fn compile(sources: Sources) -> Compilation {
    compile_with(sources, true)
}

/// [`compile`] without folding tables into classes: every declared table decided on its
/// own. The same decisions, at roles × tables cost; for tests that check the folding.
#[doc(hidden)]
pub fn compile_unpartitioned(sources: Sources) -> Compilation {
    compile_with(sources, false)
}

fn compile_with(mut sources: Sources, partition: bool) -> Compilation {
    let mut diagnostics = Diagnostics::default();
    let mut ast = parse::parse(&sources, &mut diagnostics);
    if !ast.catalogs.is_empty() && !sources.files.iter().any(|f| f.path == catalog::PATH) {
        // `catalog "postgresql"`: the built-in declarations join the policy's files.
        sources = sources.with_file(catalog::PATH, catalog::TEXT);
        diagnostics = Diagnostics::default();
        ast = parse::parse(&sources, &mut diagnostics);
    }
    let model = resolve::resolve_with(&sources, &ast, &mut diagnostics, partition);
    // The model holds everything later passes need; a large catalog's syntax tree is most
    // of the memory a build takes.
    drop(ast);
    let mut policy = None;
    let mut table = None;
    if !diagnostics.has_errors() {
        let compiled = combine::combine(&model);
        verify::verify(&model, &compiled, &mut diagnostics);
        match pgate_core::table::write(&compiled) {
            Ok(bytes) => table = Some(bytes),
            Err(e) => diagnostics.push(Diagnostic::error(diag::codes::TABLE_LIMIT, e.to_string())),
        }
        if !diagnostics.has_errors() {
            policy = Some(compiled);
        }
    }
    diagnostics.sort();
    Compilation {
        sources,
        diagnostics,
        model,
        policy,
        table,
    }
}

/// Reads and compiles the policy at `path` (a `.kdl` file or a directory).
pub fn compile_path(path: &Path) -> Result<Compilation, SourceError> {
    Ok(compile(source::load(path)?))
}

/// Compiles in-memory KDL text (one file named `name`).
pub fn compile_str(name: &str, text: &str) -> Compilation {
    compile(Sources::from_memory([(name, text)]))
}

/// Library errors for callers that want table bytes from a path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the policy has {errors} error(s); run `pgate-compile check` for details")]
    Policy { errors: usize },
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load policy table: {0}")]
    Table(#[from] LoadError),
}

/// Table bytes from a path: a built `.pgt` is read as is; anything else is compiled.
pub struct PolicyTable {
    pub bytes: Vec<u8>,
    /// Present when the table was compiled from sources.
    pub compilation: Option<Compilation>,
}

impl PolicyTable {
    /// A validated view (the data plane's reader).
    pub fn table(&self) -> Result<Table<'_>, LoadError> {
        Table::parse(&self.bytes)
    }
}

/// Whether `path` names a built table rather than policy sources.
pub fn is_table_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "pgt")
}

/// Reads a `.pgt` file, or compiles sources into table bytes.
pub fn load_table(path: &Path) -> Result<PolicyTable, Error> {
    if is_table_path(path) {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(PolicyTable {
            bytes,
            compilation: None,
        });
    }
    let c = compile_path(path)?;
    match c.table_bytes() {
        Some(bytes) => Ok(PolicyTable {
            bytes,
            compilation: Some(c),
        }),
        None => Err(Error::Policy {
            errors: c.diagnostics.count(Severity::Error),
        }),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over the target.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy.pgt".to_string());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
