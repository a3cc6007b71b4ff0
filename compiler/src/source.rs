//! Policy sources: finding, reading and fingerprinting the `.kdl` files of a policy.
//!
//! A policy is one `.kdl` file or a directory searched recursively for `.kdl` files
//! (hidden entries skipped, directory symlinks not followed). Files are ordered by their
//! `/`-separated path relative to the root, so the order in which they were created on
//! disk never matters. Every input has a limit (file size, total size, file count,
//! directory depth).
//!
//! This module only reads; it must never interpret policy text, and it must never let
//! directory iteration order leak into anything it returns.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest accepted `.kdl` file.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest accepted policy (all files together).
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Most `.kdl` files in one policy.
pub const MAX_FILES: usize = 4096;
/// Deepest directory nesting searched.
pub const MAX_DIR_DEPTH: usize = 16;

/// Index of a file in [`Sources::files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub offset: u32,
    pub len: u32,
}

impl Span {
    pub fn new(file: FileId, offset: usize, len: usize) -> Self {
        Span {
            file,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }
}

/// Why sources could not be read (a usage or I/O problem, not a policy error).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is {size} bytes; a policy file may have at most {limit} bytes")]
    FileTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("the policy is larger than {limit} bytes in total")]
    PolicyTooLarge { limit: u64 },
    #[error("the policy has more than {limit} `.kdl` files")]
    TooManyFiles { limit: usize },
    #[error("`{path}` is nested deeper than {limit} directories")]
    TooDeep { path: PathBuf, limit: usize },
    #[error("`{path}` is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("`{path}` contains no `.kdl` files")]
    Empty { path: PathBuf },
    #[error("`{path}` is neither a `.kdl` file nor a directory")]
    NotPolicy { path: PathBuf },
}

/// One policy file.
#[derive(Clone)]
pub struct SourceFile {
    pub id: FileId,
    /// Path relative to the policy root, `/`-separated (the file name for a single file).
    pub path: String,
    pub text: Arc<str>,
    line_starts: Vec<u32>,
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFile")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl SourceFile {
    fn new(id: FileId, path: String, text: Arc<str>) -> Self {
        let mut line_starts = vec![0u32];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(u32::try_from(i + 1).unwrap_or(u32::MAX));
            }
        }
        SourceFile {
            id,
            path,
            text,
            line_starts,
        }
    }

    /// 1-based (line, column) of a byte offset; columns count characters.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let offset = offset.min(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
        let line_idx = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let col = self
            .text
            .get(start as usize..offset as usize)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (
            u32::try_from(line_idx + 1).unwrap_or(u32::MAX),
            u32::try_from(col + 1).unwrap_or(u32::MAX),
        )
    }

    /// The whole lines from `margin` lines before the one holding byte `from` to `margin`
    /// lines after the one holding byte `to`: (start byte, end byte, 0-based first line).
    pub fn lines_around(&self, from: u32, to: u32, margin: usize) -> (usize, usize, usize) {
        let line_of = |offset: u32| match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let first = line_of(from).saturating_sub(margin);
        let last = line_of(to).saturating_add(margin + 1);
        let start = self.line_starts.get(first).map_or(0, |s| *s as usize);
        let end = self
            .line_starts
            .get(last)
            .map_or(self.text.len(), |s| *s as usize)
            .min(self.text.len());
        (start.min(end), end, first)
    }

    /// The text of a span ("" when out of range).
    pub fn slice(&self, span: Span) -> &str {
        let start = span.offset as usize;
        let end = start.saturating_add(span.len as usize);
        self.text.get(start..end).unwrap_or("")
    }
}

/// Every file of a policy, in path order, with their digest.
#[derive(Clone, Debug)]
pub struct Sources {
    /// What the user named (directory or file).
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
    /// BLAKE3 over the sorted (relative path, contents) pairs.
    pub digest: [u8; 32],
}

impl Sources {
    /// Builds sources from in-memory `(relative path, text)` pairs (tests, benches, tools).
    /// The pairs are sorted by path; their order does not matter.
    pub fn from_memory<P: Into<String>, T: Into<Arc<str>>>(
        files: impl IntoIterator<Item = (P, T)>,
    ) -> Self {
        let mut pairs: Vec<(String, Arc<str>)> = files
            .into_iter()
            .map(|(p, t)| (p.into(), t.into()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Self::from_sorted(PathBuf::from("."), pairs)
    }

    fn from_sorted(root: PathBuf, pairs: Vec<(String, Arc<str>)>) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"pgate-policy-sources\0");
        let mut files = Vec::with_capacity(pairs.len());
        for (i, (path, text)) in pairs.into_iter().enumerate() {
            hasher.update(&(path.len() as u64).to_le_bytes());
            hasher.update(path.as_bytes());
            hasher.update(&(text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
            files.push(SourceFile::new(
                FileId(u32::try_from(i).unwrap_or(u32::MAX)),
                path,
                text,
            ));
        }
        Sources {
            root,
            files,
            digest: *hasher.finalize().as_bytes(),
        }
    }

    /// These sources and one more file (the built-in catalog), in path order, digested.
    pub fn with_file(self, path: &str, text: &str) -> Sources {
        let mut pairs: Vec<(String, Arc<str>)> =
            self.files.into_iter().map(|f| (f.path, f.text)).collect();
        pairs.push((path.to_owned(), Arc::from(text)));
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Sources::from_sorted(self.root, pairs)
    }

    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// `path:line:col` of a span's start.
    pub fn location(&self, span: Span) -> Location {
        match self.file(span.file) {
            Some(f) => {
                let (line, column) = f.line_col(span.offset);
                Location {
                    file: f.path.clone(),
                    line,
                    column,
                }
            }
            None => Location {
                file: String::new(),
                line: 0,
                column: 0,
            },
        }
    }
}

/// A resolved source position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Reads a policy: one `.kdl` file, or every `.kdl` file under a directory.
pub fn load(path: &Path) -> Result<Sources, SourceError> {
    let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    if meta.is_dir() {
        walk(path, "", 0, &mut found)?;
        if found.is_empty() {
            return Err(SourceError::Empty {
                path: path.to_path_buf(),
            });
        }
    } else if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy.kdl".to_string());
        found.push((name, path.to_path_buf()));
    } else {
        return Err(SourceError::NotPolicy {
            path: path.to_path_buf(),
        });
    }
    found.sort();
    let mut total = 0u64;
    let mut pairs = Vec::with_capacity(found.len());
    for (rel, full) in found {
        let text = read_limited(&full)?;
        total += text.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(SourceError::PolicyTooLarge {
                limit: MAX_TOTAL_BYTES,
            });
        }
        pairs.push((rel, Arc::<str>::from(text)));
    }
    Ok(Sources::from_sorted(path.to_path_buf(), pairs))
}

fn read_limited(path: &Path) -> Result<String, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(SourceError::FileTooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(SourceError::FileTooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SourceError> {
    if depth > MAX_DIR_DEPTH {
        return Err(SourceError::TooDeep {
            path: dir.to_path_buf(),
            limit: MAX_DIR_DEPTH,
        });
    }
    let io = |source| SourceError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        entries.push((name, entry.path()));
    }
    entries.sort();
    for (name, full) in entries {
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let lmeta = std::fs::symlink_metadata(&full).map_err(|source| SourceError::Io {
            path: full.clone(),
            source,
        })?;
        if lmeta.is_dir() {
            walk(&full, &rel, depth + 1, out)?;
        } else if name.ends_with(".kdl") {
            // Files (and symlinks to files) count; symlinks to directories are not followed.
            let is_file = std::fs::metadata(&full)
                .map(|m| m.is_file())
                .unwrap_or(false);
            if is_file {
                if out.len() >= MAX_FILES {
                    return Err(SourceError::TooManyFiles { limit: MAX_FILES });
                }
                out.push((rel, full));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let s = Sources::from_memory([("a.kdl", "ab\ncé d\n")]);
        let f = &s.files[0];
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        // "cé " is 4 bytes; offset 7 is `d`, the 4th character.
        assert_eq!(f.line_col(7), (2, 4));
    }

    #[test]
    fn digest_ignores_input_order_but_not_content() {
        let a = Sources::from_memory([("a.kdl", "x"), ("b.kdl", "y")]);
        let b = Sources::from_memory([("b.kdl", "y"), ("a.kdl", "x")]);
        let c = Sources::from_memory([("a.kdl", "x"), ("b.kdl", "z")]);
        // Moving a byte from contents to path must change the digest too.
        let d = Sources::from_memory([("a.kdlx", ""), ("b.kdl", "y")]);
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
        assert_ne!(a.digest, d.digest);
        assert_eq!(a.files[0].path, "a.kdl");
    }
}
