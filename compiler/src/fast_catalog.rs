//! A fast path for catalog files: `table` and `function` declarations in the plain shape
//! `schema --from` writes, read straight into the [`ast`](crate::ast) without building a
//! KDL document.
//!
//! A catalog of 100,000 tables is tens of megabytes of KDL, and the `kdl` crate (which
//! keeps every space and comment for editing) reads about a megabyte a second: most of a
//! large build went into it. This reader accepts a strict subset of KDL v2 — bare node
//! names, quoted strings without escapes, spaces and tabs, `\n` line ends, `;`, braces
//! and `//` line comments — and produces exactly the nodes, values and spans the general
//! parser would. Anything else (a property, an escape, a raw or multi-line string, a
//! block comment, `\r`, an unexpected node, a missing argument) makes it give up on the
//! whole file, which then goes through the `kdl` crate and its diagnostics as before: it
//! may only be faster, never different. The tests check it against the general parser.

use crate::ast::{ColumnNode, FunctionNode, Name, Spanned, TableNode};
use crate::source::{SourceFile, Span};

/// What one catalog file declares, and how many nodes that is (for the node limit).
#[derive(Debug, Default)]
pub struct CatalogFile {
    pub tables: Vec<TableNode>,
    pub functions: Vec<FunctionNode>,
    pub nodes: usize,
}

/// Reads `file` if it is a catalog in the plain shape; `None` means "use the general
/// parser" (never that the file is wrong).
pub fn parse(file: &SourceFile) -> Option<CatalogFile> {
    let mut r = Reader {
        b: file.text.as_bytes(),
        text: &file.text,
        at: 0,
        file,
    };
    let mut out = CatalogFile::default();
    loop {
        r.skip_blank_lines()?;
        if r.at >= r.b.len() {
            return Some(out);
        }
        let node = r.node()?;
        out.nodes += node.count();
        match node.name {
            "table" => out.tables.push(node.table()?),
            "function" => out.functions.push(node.function()?),
            _ => return None,
        }
    }
}

/// A node as read: name, string arguments, children, span.
struct Node<'t> {
    name: &'t str,
    args: Vec<Name>,
    children: Option<Vec<Node<'t>>>,
    span: Span,
}

impl Node<'_> {
    fn count(&self) -> usize {
        1 + self
            .children
            .iter()
            .flatten()
            .map(Node::count)
            .sum::<usize>()
    }

    fn one_arg(&mut self) -> Option<Name> {
        (self.args.len() == 1).then(|| self.args.pop()).flatten()
    }

    /// Arguments of a leaf that needs at least one.
    fn leaf_args(self) -> Option<Vec<Name>> {
        (self.children.is_none() && !self.args.is_empty()).then_some(self.args)
    }

    fn table(mut self) -> Option<TableNode> {
        let name = self.one_arg()?;
        let mut columns = Vec::new();
        let mut tags = Vec::new();
        for mut c in self.children.take().unwrap_or_default() {
            match c.name {
                "columns" => columns.extend(c.leaf_args()?.into_iter().map(|n| ColumnNode {
                    name: n,
                    tags: Vec::new(),
                })),
                "column" => {
                    let n = c.one_arg()?;
                    let mut ctags = Vec::new();
                    for cc in c.children.take().unwrap_or_default() {
                        if cc.name != "tags" {
                            return None;
                        }
                        ctags.extend(cc.leaf_args()?);
                    }
                    columns.push(ColumnNode {
                        name: n,
                        tags: ctags,
                    });
                }
                "tags" => tags.extend(c.leaf_args()?),
                _ => return None,
            }
        }
        Some(TableNode {
            name,
            span: self.span,
            columns,
            tags,
        })
    }

    fn function(mut self) -> Option<FunctionNode> {
        let name = self.one_arg()?;
        let mut tags = Vec::new();
        let mut overloads: Option<Vec<Name>> = None;
        for c in self.children.take().unwrap_or_default() {
            match c.name {
                "tags" => tags.extend(c.leaf_args()?),
                "overloads" => overloads
                    .get_or_insert_with(Vec::new)
                    .extend(c.leaf_args()?),
                _ => return None,
            }
        }
        Some(FunctionNode {
            name,
            span: self.span,
            tags,
            overloads,
        })
    }
}

struct Reader<'t> {
    b: &'t [u8],
    text: &'t str,
    at: usize,
    file: &'t SourceFile,
}

impl<'t> Reader<'t> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file.id, start, end - start)
    }

    /// Spaces and tabs.
    fn skip_space(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// A `//` comment up to (not including) its line end.
    fn skip_comment(&mut self) -> Option<()> {
        if self.b.get(self.at..self.at + 2) != Some(b"//") {
            return Some(());
        }
        let end = memchr_newline(self.b, self.at);
        allowed_text(self.text.get(self.at..end)?)?;
        self.at = end;
        Some(())
    }

    /// Blank lines and comment lines between nodes.
    fn skip_blank_lines(&mut self) -> Option<()> {
        loop {
            self.skip_space();
            self.skip_comment()?;
            match self.peek() {
                Some(b'\n') => self.at += 1,
                _ => return Some(()),
            }
        }
    }

    /// A bare node name: lowercase letters and `-`.
    fn ident(&mut self) -> Option<&'t str> {
        let start = self.at;
        while matches!(self.peek(), Some(b'a'..=b'z' | b'-')) {
            self.at += 1;
        }
        if self.at == start || self.b.get(start) == Some(&b'-') {
            return None;
        }
        self.text.get(start..self.at)
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> Option<Name> {
        let start = self.at;
        if self.peek() != Some(b'"') {
            return None;
        }
        let body_start = start + 1;
        let rel = self.b.get(body_start..)?.iter().position(|&c| c == b'"')?;
        let body_end = body_start + rel;
        let body = self.text.get(body_start..body_end)?;
        if body.contains('\\') {
            return None;
        }
        allowed_text(body)?;
        self.at = body_end + 1;
        Some(Spanned::new(body.to_string(), self.span(start, self.at)))
    }

    /// One node: its name, string arguments and an optional children block, ended by a
    /// line end, `;`, a comment, the parent's `}` or the end of the file.
    fn node(&mut self) -> Option<Node<'t>> {
        let start = self.at;
        let name = self.ident()?;
        let mut args = Vec::new();
        let mut end = self.at;
        let mut children = None;
        loop {
            let spaced = self.skip_space();
            match self.peek() {
                Some(b'"') if spaced => {
                    args.push(self.string()?);
                    end = self.at;
                }
                Some(b'{') if spaced => {
                    self.at += 1;
                    children = Some(self.children()?);
                    end = self.at;
                    self.skip_space();
                    break;
                }
                _ => break,
            }
        }
        // The terminator: `;`, a comment, a line end, the parent's `}` or the end.
        if self.peek() == Some(b';') {
            self.at += 1;
        } else {
            self.skip_comment()?;
            match self.peek() {
                None | Some(b'\n' | b'}') => {}
                _ => return None,
            }
        }
        Some(Node {
            name,
            args,
            children,
            span: self.span(start, end),
        })
    }

    /// The nodes of a children block up to and including its `}`.
    fn children(&mut self) -> Option<Vec<Node<'t>>> {
        let mut out = Vec::new();
        loop {
            self.skip_blank_lines()?;
            match self.peek() {
                Some(b'}') => {
                    self.at += 1;
                    return Some(out);
                }
                None => return None,
                // Recursion is bounded: the parser checks brace nesting before this runs.
                _ => out.push(self.node()?),
            }
        }
    }
}

fn memchr_newline(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |i| from + i)
}

/// Text KDL v2 takes literally in a string or comment: no control characters, no
/// newline other than `\n` (which ends a line before this is called), no code point the
/// specification forbids (bidirectional controls, the byte-order mark).
fn allowed_text(s: &str) -> Option<()> {
    let bad = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}'
                    | '\u{2029}'
                    | '\u{200E}'
                    | '\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{FEFF}'
            )
    };
    if s.chars().any(bad) { None } else { Some(()) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use crate::diag::Diagnostics;
    use crate::parse::parse_with;
    use crate::source::Sources;

    /// (tables, functions) as the general parser reads them, or `None` with diagnostics.
    fn general(text: &str) -> Option<String> {
        let sources = Sources::from_memory([("c.kdl", text)]);
        let mut d = Diagnostics::default();
        let ast = parse_with(&sources, &mut d, false);
        (!d.has_errors() && d.items.is_empty())
            .then(|| format!("{:?}\n{:?}", ast.tables, ast.functions))
    }

    fn fast(text: &str) -> Option<String> {
        let sources = Sources::from_memory([("c.kdl", text)]);
        let cat = super::parse(&sources.files[0])?;
        Some(format!("{:?}\n{:?}", cat.tables, cat.functions))
    }

    const PLAIN: &[&str] = &[
        "",
        "\n\n",
        "table \"s.t\"\n",
        "table \"s.t\"",
        "table \"s.t\" {\n    columns \"a\" \"b\"\n    column \"c\" { tags \"pii\" \"x\" }\n    tags \"g\"\n}\n",
        "table \"s.t\" { columns \"a\"; columns \"b\" }\ntable \"s.u\" {\n}\n",
        "// Generated by `pgate-compile schema` from database \"d\".\n\n// view\ntable \"s.v\" {\n\tcolumns \"a\" // trailing\n}\n",
        "function \"pg_catalog.now\"\nfunction \"s.f\" { tags \"x\" }\nfunction \"s.g\" {\n    tags \"a\"\n    overloads \"\" \"integer\" \"text, text\"\n}\n",
        "table \"ünï.cödé\" { columns \"名前\" \"a b\" }\n",
        "table \"s.t\" {   \n  column \"c\" {\n    tags \"p\"\n  }\n};\n",
    ];

    /// The plain shapes are read by the fast path, exactly as the general parser reads them.
    #[test]
    fn plain_catalogs_read_as_the_general_parser_reads_them() {
        for text in PLAIN {
            let g = general(text).unwrap_or_else(|| panic!("general parser refuses {text:?}"));
            assert_eq!(fast(text).as_deref(), Some(g.as_str()), "{text:?}");
        }
    }

    /// The built-in PostgreSQL catalog is in the plain shape, and reads the same both ways.
    #[test]
    fn the_built_in_catalog_reads_the_same() {
        let g = general(crate::catalog::TEXT).expect("the built-in catalog parses");
        assert_eq!(fast(crate::catalog::TEXT), Some(g));
    }

    /// Everything outside the subset goes to the general parser.
    #[test]
    fn anything_else_is_left_to_the_general_parser() {
        for text in [
            "table \"a\\\"b.c\"\n",
            "table \"s.t\" x=\"1\"\n",
            "table r#\"s.t\"#\n",
            "/-table \"s.t\"\n",
            "table \"s.t\" /* c */\n",
            "table \"s.t\"\r\n",
            "table \"s.\u{200E}t\"\n",
            "table s.t\n",
            "table \"s.t\"{ columns \"a\" }\n",
            "table \"s.t\" { columns }\n",
            "table \"s.t\" { column \"a\" \"b\" }\n",
            "table \"s.t\" { colour \"a\" }\n",
            "role \"r\" { allow \"select\" }\n",
            "table \"a.b\" \"c.d\"\n",
            "table \"s.t\" } \n",
            "\u{feff}table \"s.t\"\n",
        ] {
            assert!(fast(text).is_none(), "{text:?}");
        }
    }

    const TOKENS: &[&str] = &[
        "table",
        "function",
        "columns",
        "column",
        "tags",
        "overloads",
        "role",
        " ",
        " ",
        "\t",
        "\n",
        "\n",
        ";",
        "{",
        "}",
        "\"a.b\"",
        "\"c\"",
        "\"\"",
        "\"é.x\"",
        "// x\n",
        "\"x\\\"y\"",
        "k=\"v\"",
        "/-",
        "1",
        "#true",
        "\"\u{2028}\"",
        "\r\n",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Plain catalogs with one token inserted somewhere: near the edge of the subset.
        #[test]
        fn the_fast_path_never_differs_near_plain_shapes(
            base in 0usize..PLAIN.len(),
            extra in prop::collection::vec((0usize..200, 0usize..TOKENS.len()), 0..3),
        ) {
            let mut text = PLAIN[base].to_string();
            for (at, tok) in extra {
                let mut at = at.min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, TOKENS[tok]);
            }
            if let Some(f) = fast(&text) {
                prop_assert_eq!(Some(f), general(&text), "{:?}", text);
            }
        }

        /// Whatever the fast path reads, the general parser reads without a diagnostic and
        /// into the same nodes, values and spans.
        #[test]
        fn the_fast_path_never_differs(toks in prop::collection::vec(0usize..TOKENS.len(), 0..40)) {
            let text: String = toks.iter().map(|&i| TOKENS[i]).collect();
            if let Some(f) = fast(&text) {
                prop_assert_eq!(Some(f), general(&text), "{:?}", text);
            }
        }
    }
}
