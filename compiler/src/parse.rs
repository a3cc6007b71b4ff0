//! KDL text → typed [`Ast`], with a diagnostic (never a panic) for every malformed node.
//!
//! Uses the `kdl` crate's v2 document parser, which keeps the span of every node and
//! entry. This pass checks only the shape of nodes: known node names, argument and
//! property types, required properties, value spellings (classes are left as strings for
//! resolution to check against the vocabulary). It must never look across nodes — names
//! are resolved in [`crate::resolve`].
//!
//! Limits: at most [`MAX_NODES`] nodes over the whole policy and a brace nesting depth of
//! [`MAX_NESTING`] per file (checked before the recursive KDL parser runs).

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use pgate_core::table::model::{MAX_DELEGATION_DEPTH, MaskKind, OnExceed, RateScope};

use crate::ast::*;
use crate::diag::{Diagnostic, Diagnostics, codes, did_you_mean};
use crate::source::{SourceFile, Sources, Span};

/// Most KDL nodes (at any depth) in one policy.
pub const MAX_NODES: usize = 2_000_000;
/// Deepest `{` nesting accepted in a file (the language needs 4).
pub const MAX_NESTING: usize = 32;
/// Longest rule text kept for the table (bytes).
pub const MAX_RULE_TEXT: usize = 240;

const TOP_LEVEL: &[&str] = &["table", "function", "role", "invariant", "test", "catalog"];

/// Parses every file of `sources`.
pub fn parse(sources: &Sources, diags: &mut Diagnostics) -> Ast {
    parse_with(sources, diags, true)
}

/// [`parse`], with `fast` false: every file through the `kdl` crate (for tests that check
/// [`crate::fast_catalog`] against it).
pub fn parse_with(sources: &Sources, diags: &mut Diagnostics, fast: bool) -> Ast {
    let mut ast = Ast::default();
    let mut nodes = 0usize;
    for file in &sources.files {
        let mut p = Parser {
            file,
            diags: &mut *diags,
            nodes: &mut nodes,
            over_limit: false,
            fast,
        };
        p.file_(&mut ast);
    }
    ast
}

struct Parser<'a> {
    file: &'a SourceFile,
    diags: &'a mut Diagnostics,
    nodes: &'a mut usize,
    over_limit: bool,
    /// Try [`crate::fast_catalog`] first.
    fast: bool,
}

/// A string argument or property value with its span.
type Str = Name;

impl Parser<'_> {
    fn file_(&mut self, ast: &mut Ast) {
        let text: &str = &self.file.text;
        if let Some(offset) = nesting_exceeds(text, MAX_NESTING) {
            self.diags.push(
                Diagnostic::error(
                    codes::INPUT_LIMIT,
                    format!("nodes are nested deeper than {MAX_NESTING} levels"),
                )
                .label(Span::new(self.file.id, offset, 1), "too deep"),
            );
            return;
        }
        if let Some(cat) = self
            .fast
            .then(|| crate::fast_catalog::parse(self.file))
            .flatten()
            && *self.nodes + cat.nodes <= MAX_NODES
        {
            *self.nodes += cat.nodes;
            ast.tables.extend(cat.tables);
            ast.functions.extend(cat.functions);
            return;
        }
        let doc = match KdlDocument::parse_v2(text) {
            Ok(doc) => doc,
            Err(err) => {
                for d in &err.diagnostics {
                    let mut span = self.trimmed(d.span.offset(), d.span.len().max(1));
                    // Some kdl errors span from far back (even the start of the file) to
                    // the offending token: point at the last line of the span.
                    let text = self.file.slice(span);
                    if let Some(nl) = text.rfind('\n') {
                        let start = span.offset as usize + nl + 1;
                        let end = (span.offset + span.len) as usize;
                        span = self.trimmed(start, end.saturating_sub(start).max(1));
                    }
                    let message = d
                        .message
                        .clone()
                        .unwrap_or_else(|| "invalid kdl".to_string())
                        .to_lowercase();
                    let label = d.label.clone().unwrap_or_else(|| "here".to_string());
                    self.diags.push(
                        Diagnostic::error(
                            codes::KDL_SYNTAX,
                            format!("kdl syntax error: {message}"),
                        )
                        .label(span, label)
                        .with_help(d.help.clone()),
                    );
                }
                if err.diagnostics.is_empty() {
                    self.diags.push(
                        Diagnostic::error(codes::KDL_SYNTAX, "kdl syntax error")
                            .label(Span::new(self.file.id, 0, 0), ""),
                    );
                }
                return;
            }
        };
        for node in doc.nodes() {
            if !self.count() {
                return;
            }
            match node.name().value() {
                "table" => {
                    if let Some(t) = self.table(node) {
                        ast.tables.push(t);
                    }
                }
                "function" => {
                    if let Some(f) = self.function(node) {
                        ast.functions.push(f);
                    }
                }
                "role" => {
                    if let Some(r) = self.role(node) {
                        ast.roles.push(r);
                    }
                }
                "invariant" => {
                    if let Some(i) = self.invariant(node) {
                        ast.invariants.push(i);
                    }
                }
                "test" => {
                    if let Some(t) = self.test(node) {
                        ast.tests.push(t);
                    }
                }
                "catalog" => {
                    let e = self.entries(node, &[]);
                    self.no_children(node);
                    if let Some(n) =
                        self.single_name(node, &e.args, "a catalog name (`postgresql`)")
                    {
                        if n.value == crate::catalog::NAME {
                            ast.catalogs.push(n);
                        } else {
                            self.diags.push(
                                Diagnostic::error(
                                    codes::UNKNOWN_NODE,
                                    format!("unknown catalog `{}`", n.value),
                                )
                                .label(n.span, "here")
                                .with_help(Some(format!(
                                    "the built-in catalog is `{}` (PostgreSQL's system catalogs and views)",
                                    crate::catalog::NAME
                                ))),
                            );
                        }
                    }
                }
                _ => self.unknown_node(node, TOP_LEVEL, "at the top level"),
            }
        }
    }

    fn count(&mut self) -> bool {
        *self.nodes += 1;
        if *self.nodes > MAX_NODES {
            if !self.over_limit {
                self.over_limit = true;
                self.diags.push(
                    Diagnostic::error(
                        codes::INPUT_LIMIT,
                        format!("the policy has more than {MAX_NODES} nodes"),
                    )
                    .label(Span::new(self.file.id, 0, 0), ""),
                );
            }
            return false;
        }
        true
    }

    // ---- spans ----

    /// A span with surrounding whitespace (and a trailing `;`) removed.
    fn trimmed(&self, offset: usize, len: usize) -> Span {
        let text: &str = &self.file.text;
        let end = offset.saturating_add(len).min(text.len());
        let start = offset.min(end);
        let slice = text.get(start..end).unwrap_or("");
        let lead = slice.len() - slice.trim_start().len();
        let body = slice
            .trim_start()
            .trim_end()
            .trim_end_matches(';')
            .trim_end();
        Span::new(self.file.id, start + lead, body.len())
    }

    fn node_span(&self, node: &KdlNode) -> Span {
        let start = node.name().span().offset();
        let whole = node.span();
        let mut end = whole.offset() + whole.len();
        // The node's span runs to its terminator and trailing comments; cut it at the
        // closing brace of its children, or else at its last entry.
        let text: &str = &self.file.text;
        if node.children().is_some() {
            if let Some(slice) = text.get(start..end.min(text.len()))
                && let Some(close) = slice.rfind('}')
            {
                end = start + close + 1;
            }
        } else {
            let last = node
                .entries()
                .last()
                .map(|e| {
                    let s = self.entry_span(e);
                    (s.offset + s.len) as usize
                })
                .unwrap_or(start + node.name().span().len());
            end = last;
        }
        self.trimmed(start, end.saturating_sub(start))
    }

    fn entry_span(&self, e: &KdlEntry) -> Span {
        self.trimmed(e.span().offset(), e.span().len())
    }

    fn name_span(&self, node: &KdlNode) -> Span {
        let s = node.name().span();
        Span::new(self.file.id, s.offset(), s.len())
    }

    fn node_text(&self, node: &KdlNode) -> String {
        let span = self.node_span(node);
        one_line(self.file.slice(span), MAX_RULE_TEXT)
    }

    // ---- diagnostics ----

    fn unknown_node(&mut self, node: &KdlNode, expected: &[&str], place: &str) {
        let name = node.name().value();
        let help = did_you_mean(name, expected.iter().copied()).unwrap_or_else(|| {
            format!(
                "expected one of {}",
                expected
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        self.diags.push(
            Diagnostic::error(
                codes::UNKNOWN_NODE,
                format!("unknown node `{name}` {place}"),
            )
            .label(self.name_span(node), "not part of the policy language")
            .help(help),
        );
    }

    fn invalid(&mut self, span: Span, message: String, label: &str) {
        self.diags
            .push(Diagnostic::error(codes::INVALID_VALUE, message).label(span, label));
    }

    // ---- entries ----

    /// Splits a node's entries into arguments and properties, reporting properties not in
    /// `allowed` and properties given twice.
    fn entries<'n>(&mut self, node: &'n KdlNode, allowed: &[&str]) -> Entries<'n> {
        let mut out = Entries::default();
        for e in node.entries() {
            match e.name() {
                None => out.args.push(e),
                Some(n) => {
                    let key = n.value();
                    if !allowed.contains(&key) {
                        let help =
                            did_you_mean(key, allowed.iter().copied()).unwrap_or_else(|| {
                                if allowed.is_empty() {
                                    format!("`{}` takes no properties", node.name().value())
                                } else {
                                    format!(
                                        "`{}` takes {}",
                                        node.name().value(),
                                        allowed
                                            .iter()
                                            .map(|a| format!("`{a}=`"))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                }
                            });
                        self.diags.push(
                            Diagnostic::error(
                                codes::UNKNOWN_PROPERTY,
                                format!("unknown property `{key}` on `{}`", node.name().value()),
                            )
                            .label(self.entry_span(e), "unknown property")
                            .help(help),
                        );
                        continue;
                    }
                    if out.props.iter().any(|(k, _)| *k == key) {
                        self.diags.push(
                            Diagnostic::error(
                                codes::DUPLICATE,
                                format!("property `{key}` is given twice"),
                            )
                            .label(self.entry_span(e), "second value"),
                        );
                        continue;
                    }
                    out.props.push((key, e));
                }
            }
        }
        out
    }

    fn string(&mut self, e: &KdlEntry, what: &str) -> Option<Str> {
        let span = self.entry_span(e);
        match e.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), span)),
            other => {
                self.invalid(
                    span,
                    format!("{what} must be a string, not {}", value_kind(other)),
                    "expected a string",
                );
                None
            }
        }
    }

    fn strings(&mut self, args: &[&KdlEntry], what: &str) -> Vec<Str> {
        args.iter().filter_map(|e| self.string(e, what)).collect()
    }

    /// Exactly one string argument (the node's name).
    fn single_name(&mut self, node: &KdlNode, args: &[&KdlEntry], what: &str) -> Option<Str> {
        match args {
            [one] => self.string(one, what),
            [] => {
                self.diags.push(
                    Diagnostic::error(
                        codes::MISSING_ARGUMENT,
                        format!("`{}` needs {what}", node.name().value()),
                    )
                    .label(self.node_span(node), "missing argument"),
                );
                None
            }
            [_, extra, ..] => {
                let first = self.string(args[0], what);
                self.invalid(
                    self.entry_span(extra),
                    format!("`{}` takes one argument", node.name().value()),
                    "unexpected argument",
                );
                first
            }
        }
    }

    fn no_args(&mut self, node: &KdlNode, args: &[&KdlEntry]) {
        if let Some(first) = args.first() {
            self.invalid(
                self.entry_span(first),
                format!("`{}` takes no arguments", node.name().value()),
                "unexpected argument",
            );
        }
    }

    fn at_least_one(&mut self, node: &KdlNode, args: &[&KdlEntry], what: &str) -> Vec<Str> {
        if args.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    codes::MISSING_ARGUMENT,
                    format!("`{}` needs at least one {what}", node.name().value()),
                )
                .label(self.node_span(node), "missing argument"),
            );
            return Vec::new();
        }
        self.strings(args, what)
    }

    fn prop_string(&mut self, entries: &Entries<'_>, key: &str) -> Option<Str> {
        let e = entries.prop(key)?;
        self.string(e, &format!("`{key}`"))
    }

    fn missing_prop(&mut self, node: &KdlNode, key: &str) {
        self.diags.push(
            Diagnostic::error(
                codes::MISSING_PROPERTY,
                format!("`{}` needs `{key}=`", node.name().value()),
            )
            .label(self.node_span(node), format!("missing `{key}=`")),
        );
    }

    fn no_children(&mut self, node: &KdlNode) {
        if let Some(children) = node.children()
            && let Some(first) = children.nodes().first()
        {
            self.diags.push(
                Diagnostic::error(
                    codes::UNKNOWN_NODE,
                    format!("`{}` takes no children", node.name().value()),
                )
                .label(self.name_span(first), "unexpected child"),
            );
        }
    }

    fn children<'n>(&mut self, node: &'n KdlNode) -> Vec<&'n KdlNode> {
        let mut out = Vec::new();
        if let Some(children) = node.children() {
            for c in children.nodes() {
                if !self.count() {
                    break;
                }
                out.push(c);
            }
        }
        out
    }

    /// A size: an integer, or a string like `16MiB`, `1MB`, `512KiB`, `100`.
    fn size(&mut self, e: &KdlEntry, key: &str) -> Option<u64> {
        let span = self.entry_span(e);
        let parsed = match e.value() {
            KdlValue::Integer(i) => u64::try_from(*i).ok(),
            KdlValue::String(s) => parse_size(s),
            _ => None,
        };
        if parsed.is_none() {
            self.invalid(
                span,
                format!("`{key}` must be a size such as `16MiB`, `1MB`, `512KiB` or a byte count"),
                "not a size",
            );
        }
        parsed
    }

    fn count_value(&mut self, e: &KdlEntry, key: &str) -> Option<u64> {
        let span = self.entry_span(e);
        let parsed = match e.value() {
            KdlValue::Integer(i) => u64::try_from(*i).ok(),
            KdlValue::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.invalid(
                span,
                format!("`{key}` must be a non-negative integer"),
                "not a count",
            );
        }
        parsed
    }

    fn choice<T: Copy>(&mut self, e: &KdlEntry, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(e, &format!("`{key}`"))?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == s.value) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let help = did_you_mean(&s.value, names.iter().copied()).unwrap_or_else(|| {
            format!(
                "expected one of {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        self.diags.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                format!("`{}` is not a valid `{key}`", s.value),
            )
            .label(s.span, "invalid value")
            .help(help),
        );
        None
    }

    // ---- catalog ----

    fn table(&mut self, node: &KdlNode) -> Option<TableNode> {
        let entries = self.entries(node, &[]);
        let name = self.single_name(node, &entries.args, "a table name (`schema.name`)")?;
        let mut columns = Vec::new();
        let mut tags = Vec::new();
        for child in self.children(node) {
            match child.name().value() {
                "columns" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    for n in self.at_least_one(child, &e.args, "column name") {
                        columns.push(ColumnNode {
                            name: n,
                            tags: Vec::new(),
                        });
                    }
                }
                "column" => {
                    let e = self.entries(child, &[]);
                    let Some(n) = self.single_name(child, &e.args, "a column name") else {
                        continue;
                    };
                    let mut ctags = Vec::new();
                    for cc in self.children(child) {
                        if cc.name().value() == "tags" {
                            let e = self.entries(cc, &[]);
                            self.no_children(cc);
                            ctags.extend(self.at_least_one(cc, &e.args, "tag"));
                        } else {
                            self.unknown_node(cc, &["tags"], "in `column`");
                        }
                    }
                    columns.push(ColumnNode {
                        name: n,
                        tags: ctags,
                    });
                }
                "tags" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    tags.extend(self.at_least_one(child, &e.args, "tag"));
                }
                _ => self.unknown_node(child, &["columns", "column", "tags"], "in `table`"),
            }
        }
        Some(TableNode {
            name,
            span: self.node_span(node),
            columns,
            tags,
        })
    }

    fn function(&mut self, node: &KdlNode) -> Option<FunctionNode> {
        let entries = self.entries(node, &[]);
        let name = self.single_name(node, &entries.args, "a function name (`schema.name`)")?;
        let mut tags = Vec::new();
        let mut overloads: Option<Vec<Name>> = None;
        for child in self.children(node) {
            match child.name().value() {
                "tags" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    tags.extend(self.at_least_one(child, &e.args, "tag"));
                }
                "overloads" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    // An empty string is the overload without arguments.
                    let list = self.at_least_one(child, &e.args, "overload signature");
                    overloads.get_or_insert_with(Vec::new).extend(list);
                }
                _ => self.unknown_node(child, &["tags", "overloads"], "in `function`"),
            }
        }
        Some(FunctionNode {
            name,
            span: self.node_span(node),
            tags,
            overloads,
        })
    }

    // ---- roles ----

    fn role(&mut self, node: &KdlNode) -> Option<RoleNode> {
        let entries = self.entries(node, &[]);
        let name = self.single_name(node, &entries.args, "a role name")?;
        let mut role = RoleNode {
            name,
            span: self.node_span(node),
            members: Vec::new(),
            inherits: Vec::new(),
            rules: Vec::new(),
            delegated: Vec::new(),
        };
        const ROLE_CHILDREN: &[&str] = &[
            "member",
            "inherits",
            "allow",
            "deny",
            "allow-function",
            "deny-function",
            "mask",
            "limit",
            "rate",
            "token",
            "budget",
            "delegation",
            "delegated",
        ];
        for child in self.children(node) {
            match child.name().value() {
                "member" => {
                    let e = self.entries(child, &["claim", "value"]);
                    self.no_args(child, &e.args);
                    self.no_children(child);
                    let claim = self.prop_string(&e, "claim");
                    let value = self.prop_string(&e, "value");
                    if e.prop("claim").is_none() {
                        self.missing_prop(child, "claim");
                    }
                    if e.prop("value").is_none() {
                        self.missing_prop(child, "value");
                    }
                    if let (Some(claim), Some(value)) = (claim, value) {
                        role.members.push(MemberNode {
                            claim,
                            value,
                            span: self.node_span(child),
                        });
                    }
                }
                "inherits" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    let names = self.at_least_one(child, &e.args, "role name");
                    role.inherits.extend(names);
                }
                "delegated" => {
                    if let Some(d) = self.delegated(child) {
                        role.delegated.push(d);
                    }
                }
                other => {
                    if !ROLE_CHILDREN.contains(&other) {
                        self.unknown_node(child, ROLE_CHILDREN, "in `role`");
                    } else if let Some(rule) = self.role_rule(child) {
                        role.rules.push(rule);
                    }
                }
            }
        }
        Some(role)
    }

    /// One rule of a role or of a `delegated` block.
    fn role_rule(&mut self, child: &KdlNode) -> Option<RuleNode> {
        let body = match child.name().value() {
            "allow" | "deny" => self.access_rule(child),
            "allow-function" | "deny-function" => self.function_rule(child),
            "mask" => self.mask_rule(child),
            "limit" => self.limit_rule(child),
            "rate" => self.rate_rule(child),
            "token" => self.token_rule(child),
            "budget" => self.budget_rule(child),
            "delegation" => self.delegation_rule(child),
            _ => None,
        }?;
        Some(RuleNode {
            span: self.node_span(child),
            text: self.node_text(child),
            body,
        })
    }

    /// `delegated actor="…" min-depth=N { rules }`.
    fn delegated(&mut self, node: &KdlNode) -> Option<DelegatedNode> {
        let e = self.entries(node, &["actor", "min-depth"]);
        self.no_args(node, &e.args);
        let actor = self.prop_string(&e, "actor");
        if let Some(a) = &actor
            && a.value.is_empty()
        {
            self.invalid(a.span, "`actor` must not be empty".into(), "empty");
            return None;
        }
        let min_depth = match e.prop("min-depth") {
            None => 1,
            Some(v) => {
                let n = self.count_value(v, "min-depth")?;
                match u32::try_from(n) {
                    Ok(n) if (1..=MAX_DELEGATION_DEPTH).contains(&n) => n,
                    _ => {
                        self.invalid(
                            self.entry_span(v),
                            format!("`min-depth` must be between 1 and {MAX_DELEGATION_DEPTH}"),
                            "out of range",
                        );
                        return None;
                    }
                }
            }
        };
        const NARROWING: &[&str] = &[
            "deny",
            "deny-function",
            "mask",
            "limit",
            "rate",
            "token",
            "budget",
        ];
        let mut rules = Vec::new();
        for child in self.children(node) {
            let name = child.name().value();
            if NARROWING.contains(&name) {
                if let Some(rule) = self.role_rule(child) {
                    // A mask whose column may be used in predicates would let a delegate
                    // test guesses its principal cannot.
                    if let RuleBodyNode::Mask {
                        predicates: true, ..
                    } = rule.body
                    {
                        self.diags.push(
                            Diagnostic::error(
                                codes::DELEGATED_WIDENS,
                                "`predicates=\"allow\"` cannot be used in a `delegated` block",
                            )
                            .label(rule.span, "widens what the role's own masks allow")
                            .help("a delegated session may only get less: leave `predicates` out here"),
                        );
                        continue;
                    }
                    rules.push(rule);
                }
            } else if matches!(
                name,
                "allow" | "allow-function" | "member" | "inherits" | "delegated" | "delegation"
            ) {
                self.diags.push(
                    Diagnostic::error(
                        codes::DELEGATED_WIDENS,
                        format!("`{name}` cannot be used in a `delegated` block"),
                    )
                    .label(self.name_span(child), "not a narrowing rule")
                    .help(
                        "a delegated session gets its role's rules plus these, and may only get \
                         less than its principal: deny, deny-function, mask, limit, rate, token; \
                         write allows, members and `delegation max-depth=` in the role itself",
                    ),
                );
            } else {
                self.unknown_node(child, NARROWING, "in `delegated`");
            }
        }
        if rules.is_empty() {
            self.diags.push(
                Diagnostic::error(codes::MISSING_ARGUMENT, "`delegated` block without rules")
                    .label(self.node_span(node), "nothing to apply")
                    .help("add deny, mask, limit, rate or token rules, or remove the block"),
            );
            return None;
        }
        Some(DelegatedNode {
            span: self.node_span(node),
            actor,
            min_depth,
            rules,
        })
    }

    /// `delegation max-depth=N`: the longest `act` chain a session of the role may carry
    /// (0: no delegated sessions at all).
    fn delegation_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let e = self.entries(node, &["max-depth"]);
        self.no_args(node, &e.args);
        self.no_children(node);
        let Some(v) = e.prop("max-depth") else {
            self.missing_prop(node, "max-depth");
            return None;
        };
        let n = self.count_value(v, "max-depth")?;
        match u32::try_from(n) {
            Ok(n) if n <= MAX_DELEGATION_DEPTH => Some(RuleBodyNode::Delegation { max_depth: n }),
            _ => {
                self.invalid(
                    self.entry_span(v),
                    format!("`max-depth` must be between 0 and {MAX_DELEGATION_DEPTH}"),
                    "out of range",
                );
                None
            }
        }
    }

    fn table_selector(&mut self, entries: &Entries<'_>) -> TableSelector {
        TableSelector {
            table: self.prop_string(entries, "table"),
            tag: self.prop_string(entries, "tag"),
        }
    }

    /// `columns` / `column-tag` children.
    fn column_children(&mut self, node: &KdlNode, sel: &mut ColumnSelector) {
        for child in self.children(node) {
            match child.name().value() {
                "columns" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    sel.columns
                        .extend(self.at_least_one(child, &e.args, "column name"));
                }
                "column-tag" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    sel.tags.extend(self.at_least_one(child, &e.args, "tag"));
                }
                _ => self.unknown_node(
                    child,
                    &["columns", "column-tag"],
                    &format!("in `{}`", node.name().value()),
                ),
            }
        }
    }

    fn access_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let effect = if node.name().value() == "allow" {
            AstEffect::Allow
        } else {
            AstEffect::Deny
        };
        let e = self.entries(node, &["table", "tag"]);
        let classes = self.at_least_one(node, &e.args, "statement class (or `\"*\"`)");
        let tables = self.table_selector(&e);
        let mut columns = ColumnSelector::default();
        self.column_children(node, &mut columns);
        if classes.is_empty() {
            return None;
        }
        Some(RuleBodyNode::Access {
            effect,
            classes,
            tables,
            columns,
        })
    }

    fn function_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let effect = if node.name().value() == "allow-function" {
            AstEffect::Allow
        } else {
            AstEffect::Deny
        };
        let e = self.entries(node, &["tag"]);
        self.no_children(node);
        let patterns = self.strings(&e.args, "function pattern");
        let tag = self.prop_string(&e, "tag");
        if e.args.is_empty() && e.prop("tag").is_none() {
            self.diags.push(
                Diagnostic::error(
                    codes::MISSING_ARGUMENT,
                    format!(
                        "`{}` needs function patterns or `tag=`",
                        node.name().value()
                    ),
                )
                .label(self.node_span(node), "nothing to match"),
            );
            return None;
        }
        if patterns.is_empty() && tag.is_none() {
            return None;
        }
        Some(RuleBodyNode::Function {
            effect,
            patterns,
            tag,
        })
    }

    fn mask_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let e = self.entries(
            node,
            &["table", "tag", "column", "column-tag", "with", "predicates"],
        );
        self.no_args(node, &e.args);
        let tables = self.table_selector(&e);
        let mut columns = ColumnSelector::default();
        if let Some(c) = self.prop_string(&e, "column") {
            columns.columns.push(c);
        }
        if let Some(t) = self.prop_string(&e, "column-tag") {
            columns.tags.push(t);
        }
        self.column_children(node, &mut columns);
        let Some(with) = e.prop("with") else {
            self.missing_prop(node, "with");
            return None;
        };
        let span = self.entry_span(with);
        let kind = self.choice(
            with,
            "with",
            &[
                ("redact", MaskKind::Redact),
                ("null", MaskKind::Null),
                ("hash", MaskKind::Hash),
            ],
        )?;
        let predicates = match e.prop("predicates") {
            Some(p) => self.choice(p, "predicates", &[("allow", true), ("deny", false)])?,
            None => false,
        };
        Some(RuleBodyNode::Mask {
            tables,
            columns,
            kind: Spanned::new(kind, span),
            predicates,
        })
    }

    fn limit_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let e = self.entries(node, &["rows", "bytes", "per"]);
        self.no_args(node, &e.args);
        self.no_children(node);
        if let Some(per) = e.prop("per") {
            self.choice(per, "per", &[("statement", ())])?;
        }
        let (rows, bytes) = self.rows_and_bytes(node, &e)?;
        Some(RuleBodyNode::Limit { rows, bytes })
    }

    /// `rows=N` and `bytes="SIZE"` of a `limit` or `budget`: at least one, each valid.
    fn rows_and_bytes(
        &mut self,
        node: &KdlNode,
        e: &Entries<'_>,
    ) -> Option<(Option<u64>, Option<u64>)> {
        let rows = e.prop("rows").and_then(|v| self.count_value(v, "rows"));
        let bytes = e.prop("bytes").and_then(|v| self.size(v, "bytes"));
        if e.prop("rows").is_none() && e.prop("bytes").is_none() {
            let name = node.name().value();
            self.diags.push(
                Diagnostic::error(
                    codes::MISSING_PROPERTY,
                    format!("`{name}` needs `rows=` or `bytes=`"),
                )
                .label(self.node_span(node), format!("no {name} given")),
            );
            return None;
        }
        // Given but invalid: already reported.
        (rows.is_some() || bytes.is_some()).then_some((rows, bytes))
    }

    /// `token sessions=N concurrent=M binding="certificate"`: how many sessions one token
    /// may open in all and at once (each at least 1), and whether it must be bound to the
    /// client's TLS certificate.
    fn token_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let e = self.entries(node, &["sessions", "concurrent", "binding"]);
        self.no_args(node, &e.args);
        self.no_children(node);
        let mut count = |key: &str| -> Option<Option<u32>> {
            let Some(v) = e.prop(key) else {
                return Some(None);
            };
            let n = self.count_value(v, key)?;
            match u32::try_from(n) {
                Ok(n) if (1..u32::MAX).contains(&n) => Some(Some(n)),
                _ => {
                    self.invalid(
                        self.entry_span(v),
                        format!("`{key}` must be between 1 and {}", u32::MAX - 1),
                        "out of range",
                    );
                    None
                }
            }
        };
        let sessions = count("sessions")?;
        let concurrent = count("concurrent")?;
        let certificate = match e.prop("binding") {
            Some(b) => self.choice(b, "binding", &[("certificate", true)])?,
            None => false,
        };
        if sessions.is_none() && concurrent.is_none() && !certificate {
            self.diags.push(
                Diagnostic::error(
                    codes::MISSING_PROPERTY,
                    "`token` needs `sessions=`, `concurrent=` or `binding=`",
                )
                .label(self.node_span(node), "no limit given"),
            );
            return None;
        }
        Some(RuleBodyNode::TokenUse {
            sessions,
            concurrent,
            certificate,
        })
    }

    /// `budget rows=N bytes="SIZE" per="hour|day" scope="identity"`: what one identity may
    /// receive per window, across all its sessions.
    fn budget_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let e = self.entries(node, &["rows", "bytes", "per", "scope"]);
        self.no_args(node, &e.args);
        self.no_children(node);
        let Some(per) = e.prop("per") else {
            self.missing_prop(node, "per");
            return None;
        };
        let window_secs = self.choice(per, "per", &[("hour", 3_600u32), ("day", 86_400)])?;
        if let Some(s) = e.prop("scope") {
            self.choice(s, "scope", &[("identity", ())])?;
        }
        let (rows, bytes) = self.rows_and_bytes(node, &e)?;
        if [rows, bytes].contains(&Some(0)) {
            self.invalid(
                self.node_span(node),
                "a budget must allow at least one row or byte (deny the classes instead)".into(),
                "zero",
            );
            return None;
        }
        Some(RuleBodyNode::Budget {
            rows,
            bytes,
            window_secs,
        })
    }

    fn rate_rule(&mut self, node: &KdlNode) -> Option<RuleBodyNode> {
        let e = self.entries(node, &["bytes", "per", "burst", "scope", "on-exceed"]);
        self.no_args(node, &e.args);
        self.no_children(node);
        let Some(bytes_e) = e.prop("bytes") else {
            self.missing_prop(node, "bytes");
            return None;
        };
        let bytes = self.size(bytes_e, "bytes")?;
        let per = match e.prop("per") {
            Some(p) => self.choice(
                p,
                "per",
                &[("second", 1u64), ("minute", 60), ("hour", 3600)],
            )?,
            None => 1,
        };
        let bytes_per_second = bytes / per;
        if bytes_per_second == 0 {
            self.invalid(
                self.entry_span(bytes_e),
                "a rate must allow at least one byte per second".to_string(),
                "rate rounds to zero",
            );
            return None;
        }
        let burst_bytes = match e.prop("burst") {
            Some(b) => self.size(b, "burst")?,
            None => bytes_per_second,
        };
        let scope = match e.prop("scope") {
            Some(s) => self.choice(
                s,
                "scope",
                &[
                    ("session", RateScope::Session),
                    ("identity", RateScope::Identity),
                ],
            )?,
            None => RateScope::Session,
        };
        let on_exceed = match e.prop("on-exceed") {
            Some(s) => self.choice(
                s,
                "on-exceed",
                &[
                    ("throttle", OnExceed::Throttle),
                    ("terminate", OnExceed::Terminate),
                ],
            )?,
            None => OnExceed::Throttle,
        };
        Some(RuleBodyNode::Rate {
            bytes_per_second,
            burst_bytes: burst_bytes.max(bytes_per_second),
            scope,
            on_exceed,
        })
    }

    // ---- invariants and tests ----

    fn invariant(&mut self, node: &KdlNode) -> Option<InvariantNode> {
        let entries = self.entries(node, &[]);
        let name = self.single_name(node, &entries.args, "an invariant name")?;
        let mut forbids = Vec::new();
        for child in self.children(node) {
            if child.name().value() != "forbid" {
                self.unknown_node(child, &["forbid"], "in `invariant`");
                continue;
            }
            let e = self.entries(child, &["table", "tag", "column", "column-tag", "role"]);
            let classes = self.at_least_one(child, &e.args, "statement class (or `\"*\"`)");
            let tables = self.table_selector(&e);
            let mut columns = ColumnSelector::default();
            if let Some(c) = self.prop_string(&e, "column") {
                columns.columns.push(c);
            }
            if let Some(t) = self.prop_string(&e, "column-tag") {
                columns.tags.push(t);
            }
            self.column_children(child, &mut columns);
            let role = self.prop_string(&e, "role");
            if classes.is_empty() {
                continue;
            }
            forbids.push(ForbidNode {
                span: self.node_span(child),
                text: self.node_text(child),
                classes,
                tables,
                columns,
                role,
            });
        }
        Some(InvariantNode {
            name,
            span: self.node_span(node),
            forbids,
        })
    }

    fn test(&mut self, node: &KdlNode) -> Option<TestNode> {
        let entries = self.entries(node, &[]);
        let name = self.single_name(node, &entries.args, "a test name")?;
        let mut role = None;
        let mut sql = None;
        let mut expect = None;
        let mut expect_rule = None;
        let mut search_path = Vec::new();
        let mut act = Vec::new();
        for child in self.children(node) {
            match child.name().value() {
                "role" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    role = self.single_name(child, &e.args, "a role name");
                }
                "act" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    act = self.at_least_one(child, &e.args, "actor");
                    if act.len() > MAX_DELEGATION_DEPTH as usize {
                        self.invalid(
                            self.node_span(child),
                            format!("at most {MAX_DELEGATION_DEPTH} actors"),
                            "too long a chain",
                        );
                    }
                }
                "sql" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    sql = self.single_name(child, &e.args, "a SQL string");
                }
                "expect" => {
                    let e = self.entries(child, &["rule"]);
                    self.no_children(child);
                    if let [one] = e.args.as_slice() {
                        let span = self.entry_span(one);
                        if let Some(v) = self.choice(
                            one,
                            "expect",
                            &[("allow", Expect::Allow), ("deny", Expect::Deny)],
                        ) {
                            expect = Some(Spanned::new(v, span));
                        }
                    } else {
                        self.single_name(child, &e.args, "`allow` or `deny`");
                    }
                    expect_rule = self.prop_string(&e, "rule");
                }
                "search-path" => {
                    let e = self.entries(child, &[]);
                    self.no_children(child);
                    search_path = self
                        .at_least_one(child, &e.args, "schema")
                        .into_iter()
                        .map(|s| s.value)
                        .collect();
                }
                _ => self.unknown_node(
                    child,
                    &["role", "act", "sql", "expect", "search-path"],
                    "in `test`",
                ),
            }
        }
        let span = self.node_span(node);
        let missing = |what: &str, p: &mut Self| {
            p.diags.push(
                Diagnostic::error(
                    codes::MISSING_ARGUMENT,
                    format!("test `{}` needs `{what}`", name.value),
                )
                .label(span, format!("missing `{what}`")),
            );
        };
        if role.is_none() {
            missing("role", self);
        }
        if sql.is_none() {
            missing("sql", self);
        }
        if expect.is_none() {
            missing("expect", self);
        }
        if search_path.is_empty() {
            search_path.push("public".to_string());
        }
        Some(TestNode {
            span,
            role: role?,
            act,
            sql: sql?,
            expect: expect?,
            expect_rule,
            search_path,
            name,
        })
    }
}

#[derive(Default)]
struct Entries<'n> {
    args: Vec<&'n KdlEntry>,
    props: Vec<(&'n str, &'n KdlEntry)>,
}

impl<'n> Entries<'n> {
    fn prop(&self, key: &str) -> Option<&'n KdlEntry> {
        self.props.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
    }
}

fn value_kind(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "null",
    }
}

/// Collapses whitespace to single spaces and cuts at `max` bytes (on a char boundary).
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 4));
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > max {
            break;
        }
    }
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// `16MiB`, `1MB`, `512KiB`, `100`, `2 GiB` → bytes. Units are case-insensitive.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Offset of the first `{` that opens a block deeper than `max` (strings and comments are
/// skipped roughly; this guards the recursive parser, it does not validate).
fn nesting_exceeds(text: &str, max: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse_one(text: &str) -> (Ast, Diagnostics) {
        let sources = Sources::from_memory([("p.kdl", text)]);
        let mut d = Diagnostics::default();
        let ast = parse(&sources, &mut d);
        (ast, d)
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("1MB"), Some(1_000_000));
        assert_eq!(parse_size("512KiB"), Some(512 * 1024));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("2 gib"), Some(2 << 30));
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("1.5MiB"), None);
        assert_eq!(parse_size("99999999999999TiB"), None);
    }

    #[test]
    fn token_limits_parse_and_bad_ones_are_named() {
        let (ast, d) = parse_one("role \"a\" {\n    token sessions=1 concurrent=\"2\"\n}\n");
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert!(matches!(
            ast.roles[0].rules[0].body,
            RuleBodyNode::TokenUse {
                sessions: Some(1),
                concurrent: Some(2),
                certificate: false
            }
        ));
        for (src, want) in [
            (
                "token",
                "`token` needs `sessions=`, `concurrent=` or `binding=`",
            ),
            ("token binding=\"dpop\"", "binding"),
            ("token sessions=0", "`sessions` must be between 1 and"),
            (
                "token concurrent=-1",
                "`concurrent` must be a non-negative integer",
            ),
            (
                "token sessions=4294967295",
                "`sessions` must be between 1 and",
            ),
            ("token session=1", "session"),
        ] {
            let (ast, d) = parse_one(&format!("role \"a\" {{\n    {src}\n}}\n"));
            assert!(
                ast.roles.first().is_none_or(|r| r.rules.is_empty()),
                "{src}"
            );
            assert!(
                d.items.iter().any(|i| i.message.contains(want)),
                "{src}: {:?}",
                d.items
            );
        }
    }

    #[test]
    fn rule_spans_and_text() {
        let src = "role \"a\" {\n    allow \"select\" table=\"public.t\" {\n        columns \"x\"   \"y\"\n    } // trailing\n    deny \"copy-out\"; limit rows=5\n}\n";
        let (ast, d) = parse_one(src);
        assert!(d.items.is_empty(), "{:?}", d.items);
        let r = &ast.roles[0];
        assert_eq!(r.rules.len(), 3);
        assert_eq!(
            r.rules[0].text,
            "allow \"select\" table=\"public.t\" { columns \"x\" \"y\" }"
        );
        assert_eq!(r.rules[1].text, "deny \"copy-out\"");
        assert_eq!(r.rules[2].text, "limit rows=5");
        let sources = Sources::from_memory([("p.kdl", src)]);
        assert_eq!(sources.location(r.rules[0].span).to_string(), "p.kdl:2:5");
        assert_eq!(sources.location(r.rules[2].span).to_string(), "p.kdl:5:22");
    }

    #[test]
    fn shape_errors_are_diagnostics() {
        let (_, d) = parse_one(
            "rol \"a\"\nrole \"b\" { allow table=\"x\"; limit rows=\"many\"; mask column=\"c\"; frob 1 }\ntable 5\n",
        );
        let codes: Vec<&str> = d.items.iter().map(|d| d.code).collect();
        assert!(codes.contains(&codes::UNKNOWN_NODE), "{codes:?}");
        assert!(codes.contains(&codes::MISSING_ARGUMENT), "{codes:?}");
        assert!(codes.contains(&codes::INVALID_VALUE), "{codes:?}");
        assert!(codes.contains(&codes::MISSING_PROPERTY), "{codes:?}");
        let unknown = d
            .items
            .iter()
            .find(|d| d.message.contains("`rol`"))
            .unwrap();
        assert_eq!(unknown.help.as_deref(), Some("did you mean `role`?"));
    }

    #[test]
    fn syntax_errors_and_deep_nesting_do_not_panic() {
        let (_, d) = parse_one("role \"a\" { allow \"select\" ");
        assert!(d.items.iter().any(|d| d.code == codes::KDL_SYNTAX));
        let deep = format!("{}{}", "a {".repeat(10_000), "}".repeat(10_000));
        let (_, d) = parse_one(&deep);
        assert!(d.items.iter().any(|d| d.code == codes::INPUT_LIMIT));
    }
}
