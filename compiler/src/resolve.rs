//! Resolution: the [`Ast`] checked against itself, into a [`Model`] with every name bound.
//!
//! - the catalog (tables, columns, tags, functions), sorted by name;
//! - rules numbered by source position (file path, line, column): rule `i` of the model is
//!   rule `i` of the `.pgt` file, so a deny can name its `file:line`;
//! - roles sorted by name, with inheritance flattened (cycles are errors);
//! - selectors resolved against the catalog (exact names must be declared, globs also keep
//!   their pattern for names the catalog does not declare);
//! - invariants and tests bound to roles.
//!
//! Unknown names get "did you mean" suggestions. This pass never combines allow and deny
//! (that is [`crate::combine`]) and never depends on the order of nodes or files: every
//! collection it returns is sorted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use pgate_core::class::{ClassSet, StatementClass};
use pgate_core::table::model::{
    Effect, MaskKind, Membership, OnExceed, RateScope, RuleInfo, RuleKind,
};

use crate::ast::*;
use crate::bits::ColSet;
use crate::classes::Member;
use crate::diag::{Diagnostic, Diagnostics, codes, did_you_mean};
use crate::glob;
use crate::source::{Sources, Span};

pub type RuleIndex = u32;

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub tags: BTreeSet<String>,
    pub span: Span,
}

/// A column list by what decides: names and tags (not where it was written).
#[derive(Clone)]
struct ColumnsKey(Arc<[Column]>);

impl PartialEq for ColumnsKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|(a, b)| a.name == b.name && a.tags == b.tags)
    }
}
impl Eq for ColumnsKey {}
impl std::hash::Hash for ColumnsKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        for c in self.0.iter() {
            c.name.hash(h);
            c.tags.hash(h);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// `schema.name`.
    pub qualified: String,
    /// Sorted by name; shared by every table with the same columns and column tags.
    pub columns: Arc<[Column]>,
    pub tags: BTreeSet<String>,
    pub span: Span,
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<u32> {
        self.columns
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
            .map(|i| i as u32)
    }
    pub fn all_columns(&self) -> ColSet {
        ColSet::full(self.columns.len())
    }
}

#[derive(Clone, Debug)]
pub struct Function {
    pub schema: String,
    pub name: String,
    pub qualified: String,
    pub tags: BTreeSet<String>,
    /// Every overload's identity arguments, sorted and unique (`None`: not declared).
    pub overloads: Option<BTreeSet<String>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// The decision classes ([`crate::classes`]): each stands for every declared table no
    /// selector tells apart from it, and carries its first member's name. Sorted by
    /// `qualified`.
    pub tables: Vec<Table>,
    /// Every declared table with its class, sorted by `qualified`.
    pub members: Vec<Member>,
    /// The classes each selector pattern and tag matches (`None`: scan every class).
    pub index: Option<crate::classes::ClassIndex>,
    /// Sorted by `qualified`.
    pub functions: Vec<Function>,
    /// Every tag used on a table, column or function.
    pub tags: BTreeSet<String>,
    /// Every column name of every table.
    pub column_names: BTreeSet<String>,
}

impl Catalog {
    /// The class of declared table `qualified`.
    pub fn table_index(&self, qualified: &str) -> Option<u32> {
        self.members
            .binary_search_by(|t| t.qualified.as_str().cmp(qualified))
            .ok()
            .and_then(|i| self.members.get(i))
            .map(|m| m.class)
    }
    pub fn function_index(&self, qualified: &str) -> Option<u32> {
        self.functions
            .binary_search_by(|t| t.qualified.as_str().cmp(qualified))
            .ok()
            .map(|i| i as u32)
    }
    pub fn table(&self, i: u32) -> Option<&Table> {
        self.tables.get(i as usize)
    }
}

/// The table part of a selector as written (kept so the reference evaluator can match
/// from scratch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TablePattern {
    /// No `table=`: every table.
    Any,
    Exact(String),
    Glob(String),
}

/// The declared tables (classes) a selector matches, ascending, with the columns selected
/// there (`None` = all); shared by every target that selects alike.
pub type Selection = Arc<[(u32, Option<ColSet>)]>;

/// A resolved `(table selector, column selector)` pair.
#[derive(Clone, Debug)]
pub struct Target {
    pub table: TablePattern,
    /// `tag=`: only tables with this tag.
    pub tag: Option<String>,
    /// Column names selected (`columns`), `None` with `column_tags` empty = every column.
    pub column_names: BTreeSet<String>,
    pub column_tags: BTreeSet<String>,
    /// Declared tables (classes) matched, ascending, with the columns selected there
    /// (`None` = all). A column-filtered target keeps only tables where it selects at least
    /// one column.
    pub tables: Selection,
}

impl Target {
    /// No column selector.
    pub fn all_columns(&self) -> bool {
        self.column_names.is_empty() && self.column_tags.is_empty()
    }
    /// No table filter (`table="*"` or none) and no `tag=`.
    pub fn unfiltered_tables(&self) -> bool {
        self.tag.is_none()
            && match &self.table {
                TablePattern::Any => true,
                TablePattern::Glob(g) => g == "*",
                TablePattern::Exact(_) => false,
            }
    }
    /// The glob this target applies to undeclared tables with (`None`: declared only).
    pub fn undeclared_pattern(&self) -> Option<&str> {
        if self.tag.is_some() {
            return None;
        }
        match &self.table {
            TablePattern::Any => Some("*"),
            TablePattern::Glob(g) => Some(g),
            TablePattern::Exact(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AccessRule {
    pub effect: Effect,
    pub classes: ClassSet,
    pub target: Target,
}

impl AccessRule {
    /// The pattern this rule applies to undeclared tables with. Undeclared tables have no
    /// known columns or tags: an allow with a column selector does not cover them; a deny
    /// naming columns denies them whole (fail closed); a deny by column tag does not apply.
    pub fn undeclared_pattern(&self) -> Option<&str> {
        let p = self.target.undeclared_pattern()?;
        match self.effect {
            Effect::Allow if self.target.all_columns() => Some(p),
            Effect::Allow => None,
            Effect::Deny
                if self.target.column_names.is_empty() && !self.target.column_tags.is_empty() =>
            {
                None
            }
            Effect::Deny => Some(p),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FunctionRule {
    pub effect: Effect,
    /// Declared functions matched, ascending.
    pub functions: Vec<u32>,
    /// Globs kept for undeclared functions.
    pub patterns: Vec<String>,
    /// As written, for the reference evaluator.
    pub exact: Vec<String>,
    pub tag: Option<String>,
}

#[derive(Clone, Debug)]
pub struct MaskRule {
    pub target: Target,
    pub kind: MaskKind,
    /// One exact table and one named column: masking what the role cannot read is an error.
    pub explicit: bool,
    /// `predicates="allow"`.
    pub predicates: bool,
}

#[derive(Clone, Debug)]
pub enum Body {
    Access(AccessRule),
    Function(FunctionRule),
    Mask(MaskRule),
    Limit {
        rows: Option<u64>,
        bytes: Option<u64>,
    },
    Rate {
        bytes_per_second: u64,
        burst_bytes: u64,
        scope: RateScope,
        on_exceed: OnExceed,
    },
    TokenUse {
        sessions: Option<u32>,
        concurrent: Option<u32>,
        certificate: bool,
    },
    Delegation {
        max_depth: u32,
    },
    Budget {
        rows: Option<u64>,
        bytes: Option<u64>,
        window_secs: u32,
    },
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub info: RuleInfo,
    pub span: Span,
    /// The role the rule was written in.
    pub role: u32,
    /// The `delegated` block it was written in (index into [`Model::blocks`]).
    pub block: Option<u32>,
    pub body: Body,
}

/// A `delegated` block: rules for the sessions of a role (and of the roles inheriting it)
/// whose chain is at least `min_depth` long and, with `actor`, names that actor.
#[derive(Clone, Debug)]
pub struct Block {
    /// The role it was written in.
    pub role: u32,
    pub span: Span,
    pub actor: Option<String>,
    pub min_depth: u32,
    /// Ascending.
    pub rules: Vec<RuleIndex>,
}

/// What makes a role a delegated variant (see [`crate::delegation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantOf {
    /// The role claims grant.
    pub base: u32,
    pub min_depth: u32,
    /// Sorted.
    pub actors: Vec<String>,
    /// The blocks it applies, ascending.
    pub blocks: Vec<u32>,
}

impl Rule {
    pub fn access(&self) -> Option<&AccessRule> {
        match &self.body {
            Body::Access(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub span: Span,
    pub members: Vec<Membership>,
    /// Direct parents (`inherits`), ascending.
    pub parents: Vec<u32>,
    /// Rules written in this role, ascending.
    pub own_rules: Vec<RuleIndex>,
    /// Own and inherited rules (transitively), ascending, deduplicated.
    pub rules: Vec<RuleIndex>,
    /// `delegated` blocks written in this role.
    pub own_blocks: Vec<u32>,
    /// Own and inherited blocks, ascending.
    pub blocks: Vec<u32>,
    /// `Some` for a variant made from `blocks` of another role.
    pub variant: Option<VariantOf>,
}

#[derive(Clone, Debug)]
pub struct Forbid {
    pub span: Span,
    pub text: String,
    pub classes: ClassSet,
    pub target: Target,
    pub role: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Invariant {
    pub name: String,
    pub span: Span,
    pub forbids: Vec<Forbid>,
}

#[derive(Clone, Debug)]
pub struct PolicyTest {
    pub name: String,
    pub span: Span,
    pub role: String,
    /// `act "copilot" "tool"`: the session's delegation chain, outermost first.
    pub act: Vec<String>,
    pub sql: String,
    pub expect: Expect,
    pub expect_rule: Option<String>,
    pub search_path: Vec<String>,
}

/// Everything a policy says, with names bound. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub source_digest: [u8; 32],
    pub catalog: Catalog,
    pub rules: Vec<Rule>,
    /// Roles (and their delegated variants) sorted by name.
    pub roles: Vec<Role>,
    pub blocks: Vec<Block>,
    pub invariants: Vec<Invariant>,
    pub tests: Vec<PolicyTest>,
}

impl Model {
    pub fn role_index(&self, name: &str) -> Option<u32> {
        self.roles
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| i as u32)
    }
    pub fn rule(&self, i: RuleIndex) -> Option<&Rule> {
        self.rules.get(i as usize)
    }
}

/// Resolves `ast`; problems go to `diags`. The model is complete only without errors.
pub fn resolve(sources: &Sources, ast: &Ast, diags: &mut Diagnostics) -> Model {
    resolve_with(sources, ast, diags, true)
}

/// [`resolve`], with `partition` false: every table its own class (for tests that check
/// that folding tables into classes changes no decision).
pub fn resolve_with(
    sources: &Sources,
    ast: &Ast,
    diags: &mut Diagnostics,
    partition: bool,
) -> Model {
    let mut r = Resolver {
        sources,
        diags,
        partition,
        selections: HashMap::new(),
        model: Model {
            source_digest: sources.digest,
            ..Model::default()
        },
    };
    r.catalog(ast);
    r.roles(ast);
    r.invariants(ast);
    r.tests(ast);
    r.model
}

struct Resolver<'a> {
    sources: &'a Sources,
    diags: &'a mut Diagnostics,
    /// Fold tables no selector tells apart into classes ([`crate::classes`]).
    partition: bool,
    /// Selections already made, by selector: roles repeat the same selectors.
    selections: HashMap<String, Selection>,
    model: Model,
}

fn split_qualified(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.split_once('.')?;
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some((a, b))
}

impl Resolver<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn duplicate(&mut self, what: &str, name: &str, second: Span, first: Span) {
        self.err(
            Diagnostic::error(
                codes::DUPLICATE,
                format!("{what} `{name}` is declared twice"),
            )
            .label(second, "declared again here")
            .label(first, "first declared here"),
        );
    }

    fn unqualified(&mut self, what: &str, name: &Name, candidates: Vec<&str>) {
        let suggestion = candidates
            .iter()
            .find(|c| c.split_once('.').is_some_and(|(_, n)| n == name.value))
            .map(|c| format!("did you mean `{c}`?"))
            .unwrap_or_else(|| format!("write {what} names as `schema.name`"));
        self.err(
            Diagnostic::error(
                codes::UNQUALIFIED_NAME,
                format!(
                    "{what} name `{}` is not qualified with a schema",
                    name.value
                ),
            )
            .label(name.span, "expected `schema.name`")
            .help(suggestion),
        );
    }

    /// One `overloads` entry, checked: an overload with `VARIADIC` (or a signature
    /// spread over lines) cannot be listed, because the data plane treats a listed
    /// overload as reachable only by calls of exactly its argument types.
    fn overload_signature(&mut self, o: &Name) -> Option<String> {
        let variadic = o
            .value
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| w.eq_ignore_ascii_case("variadic") || w.eq_ignore_ascii_case("default"));
        if variadic || o.value.contains(['\n', '\r']) {
            self.err(
                Diagnostic::error(
                    codes::INVALID_VALUE,
                    format!("overload `{}` cannot be listed", o.value),
                )
                .label(o.span, "has VARIADIC, a default or a line break")
                .help(
                    "list a function's overloads only when none has defaults or VARIADIC \
                     (leave `overloads` out otherwise: every schema declaring the name is \
                     then checked); `schema --from` writes them",
                ),
            );
            return None;
        }
        Some(o.value.clone())
    }

    // ---- catalog ----

    fn catalog(&mut self, ast: &Ast) {
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        let mut lists: HashSet<ColumnsKey> = HashSet::new();
        for t in &ast.tables {
            let Some((schema, name)) = split_qualified(&t.name.value) else {
                self.unqualified("table", &t.name, Vec::new());
                continue;
            };
            if glob::is_glob(&t.name.value) {
                self.err(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("table name `{}` may not contain `*`", t.name.value),
                    )
                    .label(t.name.span, "declared names are exact"),
                );
                continue;
            }
            if let Some(prev) = tables.get(&t.name.value) {
                let first = prev.span;
                self.duplicate("table", &t.name.value, t.name.span, first);
                continue;
            }
            let mut columns: BTreeMap<&str, Column> = BTreeMap::new();
            for c in &t.columns {
                if let Some(prev) = columns.get(c.name.value.as_str()) {
                    let first = prev.span;
                    self.duplicate("column", &c.name.value, c.name.span, first);
                    continue;
                }
                let tags: BTreeSet<String> = c.tags.iter().map(|t| t.value.clone()).collect();
                for tag in &tags {
                    if !self.model.catalog.tags.contains(tag) {
                        self.model.catalog.tags.insert(tag.clone());
                    }
                }
                if !self.model.catalog.column_names.contains(&c.name.value) {
                    self.model.catalog.column_names.insert(c.name.value.clone());
                }
                columns.insert(
                    &c.name.value,
                    Column {
                        name: c.name.value.clone(),
                        tags,
                        span: c.name.span,
                    },
                );
            }
            // Tables with the same columns (names and tags) share one list: a large
            // catalog repeats a few lists many times.
            let list = ColumnsKey(columns.into_values().collect());
            let columns = match lists.get(&list) {
                Some(shared) => shared.0.clone(),
                None => {
                    lists.insert(list.clone());
                    list.0
                }
            };
            let tags: BTreeSet<String> = t.tags.iter().map(|t| t.value.clone()).collect();
            for tag in &tags {
                if !self.model.catalog.tags.contains(tag) {
                    self.model.catalog.tags.insert(tag.clone());
                }
            }
            tables.insert(
                t.name.value.clone(),
                Table {
                    schema: schema.to_string(),
                    name: name.to_string(),
                    qualified: t.name.value.clone(),
                    columns,
                    tags,
                    span: t.name.span,
                },
            );
        }
        drop(lists);
        let selectors = if self.partition {
            crate::classes::Selectors::of(ast)
        } else {
            crate::classes::Selectors::apart()
        };
        let (classes, members, index) =
            crate::classes::partition(tables.into_values().collect(), &selectors);
        self.model.catalog.tables = classes;
        self.model.catalog.members = members;
        self.model.catalog.index = index;

        let mut functions: BTreeMap<String, Function> = BTreeMap::new();
        for f in &ast.functions {
            let Some((schema, name)) = split_qualified(&f.name.value) else {
                self.unqualified("function", &f.name, Vec::new());
                continue;
            };
            if let Some(prev) = functions.get(&f.name.value) {
                let first = prev.span;
                self.duplicate("function", &f.name.value, f.name.span, first);
                continue;
            }
            let tags: BTreeSet<String> = f.tags.iter().map(|t| t.value.clone()).collect();
            self.model.catalog.tags.extend(tags.iter().cloned());
            let overloads = f.overloads.as_ref().map(|list| {
                list.iter()
                    .filter_map(|o| self.overload_signature(o))
                    .collect::<BTreeSet<String>>()
            });
            functions.insert(
                f.name.value.clone(),
                Function {
                    schema: schema.to_string(),
                    name: name.to_string(),
                    qualified: f.name.value.clone(),
                    tags,
                    overloads,
                    span: f.name.span,
                },
            );
        }
        self.model.catalog.functions = functions.into_values().collect();
    }

    // ---- roles and rules ----

    fn roles(&mut self, ast: &Ast) {
        // Roles sorted by name; duplicates rejected.
        let mut by_name: BTreeMap<&str, &RoleNode> = BTreeMap::new();
        for r in &ast.roles {
            if let Some(prev) = by_name.get(r.name.value.as_str()) {
                let first = prev.name.span;
                self.duplicate("role", &r.name.value, r.name.span, first);
                continue;
            }
            by_name.insert(&r.name.value, r);
        }
        let nodes: Vec<&RoleNode> = by_name.into_values().collect();
        self.model.roles = nodes
            .iter()
            .map(|r| {
                let mut members: Vec<Membership> = r
                    .members
                    .iter()
                    .map(|m| Membership {
                        claim: m.claim.value.clone(),
                        value: m.value.value.clone(),
                    })
                    .collect();
                members.sort();
                members.dedup();
                Role {
                    name: r.name.value.clone(),
                    span: r.name.span,
                    members,
                    parents: Vec::new(),
                    own_rules: Vec::new(),
                    rules: Vec::new(),
                    own_blocks: Vec::new(),
                    blocks: Vec::new(),
                    variant: None,
                }
            })
            .collect();

        // Blocks in role order, then source order.
        let mut block_of: Vec<(u32, &DelegatedNode)> = Vec::new();
        for (ri, r) in nodes.iter().enumerate() {
            for d in &r.delegated {
                let index = self.model.blocks.len() as u32;
                self.model.blocks.push(Block {
                    role: ri as u32,
                    span: d.span,
                    actor: d.actor.as_ref().map(|a| a.value.clone()),
                    min_depth: d.min_depth,
                    rules: Vec::new(),
                });
                if let Some(role) = self.model.roles.get_mut(ri) {
                    role.own_blocks.push(index);
                }
                block_of.push((ri as u32, d));
            }
        }

        // Rules numbered by source position.
        let mut all: Vec<(Span, u32, &RuleNode, Option<u32>)> = Vec::new();
        for (ri, r) in nodes.iter().enumerate() {
            for rule in &r.rules {
                all.push((rule.span, ri as u32, rule, None));
            }
        }
        for (bi, (ri, d)) in block_of.iter().enumerate() {
            for rule in &d.rules {
                all.push((rule.span, *ri, rule, Some(bi as u32)));
            }
        }
        all.sort_by_key(|(span, ri, _, _)| (*span, *ri));
        for (span, ri, node, block) in all {
            let Some(body) = self.rule_body(&node.body) else {
                continue;
            };
            let kind = match &body {
                Body::Access(AccessRule { effect, .. })
                | Body::Function(FunctionRule { effect, .. }) => match effect {
                    Effect::Allow => RuleKind::Allow,
                    Effect::Deny => RuleKind::Deny,
                },
                Body::Mask(_) => RuleKind::Mask,
                Body::Limit { .. } => RuleKind::Limit,
                Body::Rate { .. } => RuleKind::Rate,
                Body::TokenUse { .. } => RuleKind::TokenUse,
                Body::Delegation { .. } => RuleKind::Delegation,
                Body::Budget { .. } => RuleKind::Budget,
            };
            let loc = self.sources.location(span);
            let index = self.model.rules.len() as u32;
            self.model.rules.push(Rule {
                info: RuleInfo {
                    file: loc.file,
                    line: loc.line,
                    column: loc.column,
                    kind,
                    // A block's rules are written in the role's delegated sessions: named
                    // as the variant of that block alone would be.
                    role: {
                        let name = nodes
                            .get(ri as usize)
                            .map(|r| r.name.value.clone())
                            .unwrap_or_default();
                        match block.and_then(|b| self.model.blocks.get(b as usize)) {
                            Some(b) => crate::delegation::variant_name(
                                &name,
                                b.min_depth,
                                b.actor.as_slice(),
                            ),
                            None => name,
                        }
                    },
                    text: node.text.clone(),
                },
                span,
                role: ri,
                block,
                body,
            });
            match block.and_then(|b| self.model.blocks.get_mut(b as usize)) {
                Some(b) => b.rules.push(index),
                None => {
                    if let Some(role) = self.model.roles.get_mut(ri as usize) {
                        role.own_rules.push(index);
                    }
                }
            }
        }

        // Inheritance.
        let names: Vec<String> = self.model.roles.iter().map(|r| r.name.clone()).collect();
        let mut parent_spans: Vec<Vec<(u32, Span)>> = vec![Vec::new(); nodes.len()];
        for (ri, r) in nodes.iter().enumerate() {
            for p in &r.inherits {
                match self.model.role_index(&p.value) {
                    Some(pi) => {
                        if let Some(v) = parent_spans.get_mut(ri) {
                            v.push((pi, p.span));
                        }
                    }
                    None => self.unknown_role(p, &names),
                }
            }
        }
        for (ri, ps) in parent_spans.iter().enumerate() {
            let mut parents: Vec<u32> = ps.iter().map(|(p, _)| *p).collect();
            parents.sort_unstable();
            parents.dedup();
            if let Some(role) = self.model.roles.get_mut(ri) {
                role.parents = parents;
            }
        }
        self.check_cycles(&parent_spans);
        self.flatten();
        crate::delegation::make_variants(&mut self.model, self.diags);
    }

    fn unknown_role(&mut self, name: &Name, names: &[String]) {
        let help = did_you_mean(&name.value, names.iter().map(String::as_str));
        self.err(
            Diagnostic::error(
                codes::UNKNOWN_ROLE,
                format!("unknown role `{}`", name.value),
            )
            .label(name.span, "no role has this name")
            .with_help(help),
        );
    }

    fn check_cycles(&mut self, parents: &[Vec<(u32, Span)>]) {
        // Iterative DFS with colours; every cycle is reported once, at its smallest role.
        let n = parents.len();
        let mut reported: BTreeSet<Vec<u32>> = BTreeSet::new();
        for start in 0..n {
            // Find cycles through `start` whose members are all >= start (canonical form).
            let mut stack: Vec<(u32, usize)> = vec![(start as u32, 0)];
            let mut on_path: Vec<u32> = vec![start as u32];
            let mut visited = vec![false; n];
            while let Some((node, next)) = stack.last().copied() {
                let edges = parents.get(node as usize).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(&(p, span)) = edges.get(next) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    if p as usize == start {
                        let cycle = on_path.clone();
                        if reported.insert(cycle.clone()) {
                            let path: Vec<String> = cycle
                                .iter()
                                .chain(std::iter::once(&(start as u32)))
                                .filter_map(|i| self.model.roles.get(*i as usize))
                                .map(|r| format!("`{}`", r.name))
                                .collect();
                            let name = self
                                .model
                                .roles
                                .get(start)
                                .map(|r| r.name.clone())
                                .unwrap_or_default();
                            self.err(
                                Diagnostic::error(
                                    codes::INHERITANCE_CYCLE,
                                    format!(
                                        "role `{name}` inherits from itself: {}",
                                        path.join(" → ")
                                    ),
                                )
                                .label(span, "this `inherits` closes the cycle")
                                .help("remove one `inherits` of the cycle"),
                            );
                        }
                    } else if (p as usize) > start && !visited[p as usize] && !on_path.contains(&p)
                    {
                        visited[p as usize] = true;
                        stack.push((p, 0));
                        on_path.push(p);
                    }
                } else {
                    stack.pop();
                    on_path.pop();
                }
            }
        }
    }

    fn flatten(&mut self) {
        let n = self.model.roles.len();
        for ri in 0..n {
            let mut seen = vec![false; n];
            let mut todo = vec![ri];
            let mut rules: Vec<RuleIndex> = Vec::new();
            let mut blocks: Vec<u32> = Vec::new();
            while let Some(r) = todo.pop() {
                if seen[r] {
                    continue;
                }
                seen[r] = true;
                if let Some(role) = self.model.roles.get(r) {
                    rules.extend(role.own_rules.iter().copied());
                    blocks.extend(role.own_blocks.iter().copied());
                    todo.extend(role.parents.iter().map(|p| *p as usize));
                }
            }
            rules.sort_unstable();
            rules.dedup();
            blocks.sort_unstable();
            blocks.dedup();
            if let Some(role) = self.model.roles.get_mut(ri) {
                role.rules = rules;
                role.blocks = blocks;
            }
        }
    }

    fn classes(&mut self, names: &[Name]) -> Option<ClassSet> {
        let mut set = ClassSet::EMPTY;
        let mut ok = true;
        for n in names {
            if n.value == "*" {
                for c in StatementClass::ALL {
                    if c != StatementClass::Unknown {
                        set.insert(c);
                    }
                }
                continue;
            }
            match StatementClass::from_name(&n.value) {
                Some(c) => set.insert(c),
                None => {
                    ok = false;
                    let help = did_you_mean(&n.value, StatementClass::ALL.iter().map(|c| c.name()))
                        .unwrap_or_else(|| {
                            format!(
                                "classes are {} or `*`",
                                StatementClass::ALL
                                    .iter()
                                    .map(|c| format!("`{}`", c.name()))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                    self.err(
                        Diagnostic::error(
                            codes::UNKNOWN_CLASS,
                            format!("unknown statement class `{}`", n.value),
                        )
                        .label(n.span, "not a statement class")
                        .help(help),
                    );
                }
            }
        }
        ok.then_some(set)
    }

    fn tag_known(&mut self, tag: &Name) -> bool {
        if self.model.catalog.tags.contains(&tag.value) {
            return true;
        }
        let help = did_you_mean(
            &tag.value,
            self.model.catalog.tags.iter().map(String::as_str),
        );
        self.err(
            Diagnostic::error(codes::UNKNOWN_TAG, format!("unknown tag `{}`", tag.value))
                .label(tag.span, "no table, column or function has this tag")
                .with_help(help),
        );
        false
    }

    fn target(&mut self, tables: &TableSelector, columns: &ColumnSelector) -> Option<Target> {
        let mut ok = true;
        let table = match &tables.table {
            None => TablePattern::Any,
            Some(t) if glob::is_glob(&t.value) => {
                if t.value != "*" && !t.value.contains('.') {
                    self.unqualified("table", t, Vec::new());
                    ok = false;
                }
                TablePattern::Glob(t.value.clone())
            }
            Some(t) => {
                if split_qualified(&t.value).is_none() {
                    let cands: Vec<&str> = self
                        .model
                        .catalog
                        .members
                        .iter()
                        .map(|t| t.qualified.as_str())
                        .collect();
                    let cands: Vec<String> = cands.into_iter().map(str::to_string).collect();
                    self.unqualified("table", t, cands.iter().map(String::as_str).collect());
                    ok = false;
                } else if self.model.catalog.table_index(&t.value).is_none() {
                    let help = did_you_mean(
                        &t.value,
                        self.model
                            .catalog
                            .members
                            .iter()
                            .map(|t| t.qualified.as_str()),
                    )
                    .unwrap_or_else(|| {
                        "declare it with `table \"schema.name\" { columns … }` or use a glob"
                            .to_string()
                    });
                    self.err(
                        Diagnostic::error(
                            codes::UNKNOWN_TABLE,
                            format!("unknown table `{}`", t.value),
                        )
                        .label(t.span, "not declared in the catalog")
                        .help(help),
                    );
                    ok = false;
                }
                TablePattern::Exact(t.value.clone())
            }
        };
        let tag = match &tables.tag {
            Some(t) => {
                if !self.tag_known(t) {
                    ok = false;
                }
                Some(t.value.clone())
            }
            None => None,
        };
        let mut column_names = BTreeSet::new();
        let exact_table = match &table {
            TablePattern::Exact(q) => self.model.catalog.table_index(q),
            _ => None,
        };
        for c in &columns.columns {
            let known = match exact_table {
                Some(ti) => self
                    .model
                    .catalog
                    .table(ti)
                    .is_some_and(|t| t.column_index(&c.value).is_some()),
                None => self.model.catalog.column_names.contains(&c.value),
            };
            if !known && ok {
                let (help, where_) = match exact_table.and_then(|ti| self.model.catalog.table(ti)) {
                    Some(t) => (
                        did_you_mean(&c.value, t.columns.iter().map(|c| c.name.as_str())),
                        format!("table `{}` has no such column", t.qualified),
                    ),
                    None => (
                        did_you_mean(
                            &c.value,
                            self.model.catalog.column_names.iter().map(String::as_str),
                        ),
                        "no declared table has such a column".to_string(),
                    ),
                };
                self.err(
                    Diagnostic::error(
                        codes::UNKNOWN_COLUMN,
                        format!("unknown column `{}`", c.value),
                    )
                    .label(c.span, where_)
                    .with_help(help),
                );
                ok = false;
            }
            column_names.insert(c.value.clone());
        }
        let mut column_tags = BTreeSet::new();
        for t in &columns.tags {
            if !self.tag_known(t) {
                ok = false;
            }
            column_tags.insert(t.value.clone());
        }
        if !ok {
            return None;
        }
        let mut target = Target {
            table,
            tag,
            column_names,
            column_tags,
            tables: Arc::from(Vec::new()),
        };
        let key = format!(
            "{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            target.table, target.tag, target.column_names, target.column_tags
        );
        target.tables = match self.selections.get(&key) {
            Some(t) => t.clone(),
            None => {
                let t: Selection = Arc::from(match_tables(&self.model.catalog, &target));
                self.selections.insert(key, t.clone());
                t
            }
        };
        if let (Some(tag), true) = (&tables.tag, target.tables.is_empty()) {
            self.diags.push(
                Diagnostic::warning(
                    codes::EMPTY_SELECTION,
                    format!("no declared table is tagged `{}`", tag.value),
                )
                .label(tag.span, "matches nothing")
                .help("`tag=` selects tables by their tags; to select columns by tag use a `column-tag` child"),
            );
        }
        Some(target)
    }

    fn rule_body(&mut self, body: &RuleBodyNode) -> Option<Body> {
        match body {
            RuleBodyNode::Access {
                effect,
                classes,
                tables,
                columns,
            } => {
                let classes = self.classes(classes);
                let target = self.target(tables, columns);
                Some(Body::Access(AccessRule {
                    effect: effect_of(*effect),
                    classes: classes?,
                    target: target?,
                }))
            }
            RuleBodyNode::Function {
                effect,
                patterns,
                tag,
            } => {
                let mut ok = true;
                let mut functions = BTreeSet::new();
                let mut globs = Vec::new();
                let mut exact = Vec::new();
                for p in patterns {
                    if p.value != "*" && !p.value.contains('.') {
                        // Suggest a declared function with that name, else `pg_catalog.`.
                        let mut cands: Vec<String> = self
                            .model
                            .catalog
                            .functions
                            .iter()
                            .map(|f| f.qualified.clone())
                            .collect();
                        cands.push(format!("pg_catalog.{}", p.value));
                        let with_pg: Vec<&str> = cands.iter().map(String::as_str).collect();
                        self.unqualified("function", p, with_pg);
                        ok = false;
                        continue;
                    }
                    if glob::is_glob(&p.value) {
                        for (i, f) in self.model.catalog.functions.iter().enumerate() {
                            if glob::matches(&p.value, &f.qualified) {
                                functions.insert(i as u32);
                            }
                        }
                        globs.push(p.value.clone());
                    } else {
                        match self.model.catalog.function_index(&p.value) {
                            Some(i) => {
                                functions.insert(i);
                                exact.push(p.value.clone());
                            }
                            None => {
                                let help = did_you_mean(
                                    &p.value,
                                    self.model
                                        .catalog
                                        .functions
                                        .iter()
                                        .map(|f| f.qualified.as_str()),
                                )
                                .unwrap_or_else(|| {
                                    "declare it with `function \"schema.name\"` or use a glob such as `pg_catalog.*`".to_string()
                                });
                                self.err(
                                    Diagnostic::error(
                                        codes::UNKNOWN_FUNCTION,
                                        format!("unknown function `{}`", p.value),
                                    )
                                    .label(p.span, "not declared in the catalog")
                                    .help(help),
                                );
                                ok = false;
                            }
                        }
                    }
                }
                if let Some(t) = tag {
                    if self.tag_known(t) {
                        for (i, f) in self.model.catalog.functions.iter().enumerate() {
                            if f.tags.contains(&t.value) {
                                functions.insert(i as u32);
                            }
                        }
                    } else {
                        ok = false;
                    }
                }
                globs.sort();
                globs.dedup();
                ok.then(|| {
                    Body::Function(FunctionRule {
                        effect: effect_of(*effect),
                        functions: functions.into_iter().collect(),
                        patterns: globs,
                        exact,
                        tag: tag.as_ref().map(|t| t.value.clone()),
                    })
                })
            }
            RuleBodyNode::Mask {
                tables,
                columns,
                kind,
                predicates,
            } => {
                let target = self.target(tables, columns)?;
                let explicit = matches!(target.table, TablePattern::Exact(_))
                    && target.tag.is_none()
                    && target.column_names.len() == 1
                    && target.column_tags.is_empty();
                Some(Body::Mask(MaskRule {
                    target,
                    kind: kind.value,
                    explicit,
                    predicates: *predicates,
                }))
            }
            RuleBodyNode::Limit { rows, bytes } => Some(Body::Limit {
                rows: *rows,
                bytes: *bytes,
            }),
            RuleBodyNode::Rate {
                bytes_per_second,
                burst_bytes,
                scope,
                on_exceed,
            } => Some(Body::Rate {
                bytes_per_second: *bytes_per_second,
                burst_bytes: *burst_bytes,
                scope: *scope,
                on_exceed: *on_exceed,
            }),
            RuleBodyNode::TokenUse {
                sessions,
                concurrent,
                certificate,
            } => Some(Body::TokenUse {
                sessions: *sessions,
                concurrent: *concurrent,
                certificate: *certificate,
            }),
            RuleBodyNode::Delegation { max_depth } => Some(Body::Delegation {
                max_depth: *max_depth,
            }),
            RuleBodyNode::Budget {
                rows,
                bytes,
                window_secs,
            } => Some(Body::Budget {
                rows: *rows,
                bytes: *bytes,
                window_secs: *window_secs,
            }),
        }
    }

    // ---- invariants and tests ----

    fn invariants(&mut self, ast: &Ast) {
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        let names: Vec<String> = self.model.roles.iter().map(|r| r.name.clone()).collect();
        let mut out = Vec::new();
        for inv in &ast.invariants {
            if let Some(first) = seen.get(&inv.name.value) {
                let first = *first;
                self.duplicate("invariant", &inv.name.value, inv.name.span, first);
                continue;
            }
            seen.insert(inv.name.value.clone(), inv.name.span);
            let mut forbids = Vec::new();
            for f in &inv.forbids {
                let classes = self.classes(&f.classes);
                let target = self.target(&f.tables, &f.columns);
                let role = match &f.role {
                    Some(r) => match self.model.role_index(&r.value) {
                        Some(i) => Some(Some(i)),
                        None => {
                            self.unknown_role(r, &names);
                            None
                        }
                    },
                    None => Some(None),
                };
                if let (Some(classes), Some(target), Some(role)) = (classes, target, role) {
                    forbids.push(Forbid {
                        span: f.span,
                        text: f.text.clone(),
                        classes,
                        target,
                        role,
                    });
                }
            }
            out.push(Invariant {
                name: inv.name.value.clone(),
                span: inv.name.span,
                forbids,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        self.model.invariants = out;
    }

    fn tests(&mut self, ast: &Ast) {
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        let names: Vec<String> = self.model.roles.iter().map(|r| r.name.clone()).collect();
        let mut out = Vec::new();
        for t in &ast.tests {
            if let Some(first) = seen.get(&t.name.value) {
                let first = *first;
                self.duplicate("test", &t.name.value, t.name.span, first);
                continue;
            }
            seen.insert(t.name.value.clone(), t.name.span);
            if self.model.role_index(&t.role.value).is_none() {
                self.unknown_role(&t.role, &names);
                continue;
            }
            out.push(PolicyTest {
                name: t.name.value.clone(),
                span: t.name.span,
                role: t.role.value.clone(),
                act: t.act.iter().map(|a| a.value.clone()).collect(),
                sql: t.sql.value.clone(),
                expect: t.expect.value,
                expect_rule: t.expect_rule.as_ref().map(|r| r.value.clone()),
                search_path: t.search_path.clone(),
            });
        }
        // Source order (file, position) — the order authors read them in.
        out.sort_by_key(|t| t.span);
        self.model.tests = out;
    }
}

fn effect_of(e: AstEffect) -> Effect {
    match e {
        AstEffect::Allow => Effect::Allow,
        AstEffect::Deny => Effect::Deny,
    }
}

/// Whether `target`'s table part selects declared table `t`.
pub fn table_selected(target: &Target, t: &Table) -> bool {
    let by_name = match &target.table {
        TablePattern::Any => true,
        TablePattern::Exact(q) => *q == t.qualified,
        TablePattern::Glob(g) => glob::matches(g, &t.qualified),
    };
    by_name && target.tag.as_ref().is_none_or(|tag| t.tags.contains(tag))
}

/// The columns of `t` that `target`'s column part selects (`None` = all).
pub fn columns_selected(target: &Target, t: &Table) -> Option<ColSet> {
    if target.all_columns() {
        return None;
    }
    Some(
        t.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                target.column_names.contains(&c.name)
                    || c.tags.iter().any(|tag| target.column_tags.contains(tag))
            })
            .map(|(i, _)| i as u32)
            .collect(),
    )
}

fn match_tables(catalog: &Catalog, target: &Target) -> Vec<(u32, Option<ColSet>)> {
    let mut out = Vec::new();
    fn indexed<'c>(
        catalog: &'c Catalog,
        ids: Option<&'c Vec<u32>>,
    ) -> Box<dyn Iterator<Item = (usize, &'c Table)> + 'c> {
        Box::new(
            ids.into_iter()
                .flatten()
                .filter_map(|&i| Some((i as usize, catalog.tables.get(i as usize)?))),
        )
    }
    let candidates: Box<dyn Iterator<Item = (usize, &Table)>> =
        match (&target.table, &catalog.index) {
            (TablePattern::Exact(q), _) => match catalog.table_index(q) {
                Some(i) => Box::new(
                    catalog
                        .tables
                        .get(i as usize)
                        .map(|t| (i as usize, t))
                        .into_iter(),
                ),
                None => Box::new(std::iter::empty()),
            },
            // Every pattern of the policy is indexed; each candidate is still checked below.
            (TablePattern::Glob(g), Some(ix)) if g != "*" => indexed(catalog, ix.by_pattern.get(g)),
            (TablePattern::Any, Some(ix)) if target.tag.is_some() => {
                indexed(catalog, target.tag.as_ref().and_then(|t| ix.by_tag.get(t)))
            }
            (TablePattern::Glob(g), Some(ix)) if target.tag.is_some() && g == "*" => {
                indexed(catalog, target.tag.as_ref().and_then(|t| ix.by_tag.get(t)))
            }
            _ => Box::new(catalog.tables.iter().enumerate()),
        };
    for (i, t) in candidates {
        if !table_selected(target, t) {
            continue;
        }
        let cols = columns_selected(target, t);
        if cols.as_ref().is_some_and(ColSet::is_empty) {
            continue;
        }
        out.push((i as u32, cols));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn resolve_text(text: &str) -> (Model, Diagnostics) {
        let sources = Sources::from_memory([("p.kdl", text)]);
        let mut d = Diagnostics::default();
        let ast = crate::parse::parse(&sources, &mut d);
        let m = resolve(&sources, &ast, &mut d);
        (m, d)
    }

    const CAT: &str = r#"
table "public.customers" {
    columns "id" "name"
    column "email" { tags "pii" }
    tags "crm"
}
table "public.orders" { columns "id" "total" }
function "pg_catalog.lower"
"#;

    #[test]
    fn function_overloads_are_kept_sorted_and_variadic_ones_refused() {
        let (m, d) = resolve_text(
            "function \"public.f\" { overloads \"x text\" \"\" \"x integer\"; }\nfunction \"public.g\"\n",
        );
        assert!(d.items.is_empty(), "{:?}", d.items);
        let f = &m.catalog.functions[0];
        let listed: Vec<&str> = f.overloads.iter().flatten().map(String::as_str).collect();
        assert_eq!(listed, ["", "x integer", "x text"]);
        assert!(m.catalog.functions[1].overloads.is_none());
        let (_, d) =
            resolve_text("function \"public.f\" { overloads \"VARIADIC xs integer[]\"; }\n");
        let e = d
            .items
            .iter()
            .find(|x| x.code == codes::INVALID_VALUE)
            .unwrap();
        assert!(e.message.contains("VARIADIC xs integer[]"), "{}", e.message);
    }

    #[test]
    fn unknown_names_have_suggestions() {
        let (_, d) = resolve_text(&format!(
            "{CAT}\nrole \"a\" {{\n allow \"selct\" table=\"public.custmers\"\n allow \"select\" table=\"public.orders\" {{ columns \"totl\" }}\n deny \"select\" tag=\"piii\"\n inherits \"bb\"\n allow-function \"pg_catalog.lowr\"\n}}\n"
        ));
        let find = |code: &str| d.items.iter().find(|x| x.code == code).unwrap();
        assert_eq!(
            find(codes::UNKNOWN_CLASS).help.as_deref(),
            Some("did you mean `select`?")
        );
        assert_eq!(
            find(codes::UNKNOWN_TABLE).help.as_deref(),
            Some("did you mean `public.customers`?")
        );
        assert_eq!(
            find(codes::UNKNOWN_COLUMN).help.as_deref(),
            Some("did you mean `total`?")
        );
        assert_eq!(
            find(codes::UNKNOWN_TAG).help.as_deref(),
            Some("did you mean `pii`?")
        );
        assert!(d.items.iter().any(|x| x.code == codes::UNKNOWN_ROLE));
        assert_eq!(
            find(codes::UNKNOWN_FUNCTION).help.as_deref(),
            Some("did you mean `pg_catalog.lower`?")
        );
    }

    #[test]
    fn inheritance_is_flattened_and_cycles_found() {
        let (m, d) = resolve_text(&format!(
            "{CAT}\nrole \"c\" {{ inherits \"b\"\n allow \"insert\" }}\nrole \"b\" {{ inherits \"a\"\n allow \"delete\" }}\nrole \"a\" {{ allow \"select\" }}\n"
        ));
        assert!(d.items.is_empty(), "{:?}", d.items);
        let c = &m.roles[m.role_index("c").unwrap() as usize];
        assert_eq!(c.rules.len(), 3);
        assert_eq!(
            m.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );

        let (_, d) = resolve_text(
            "role \"a\" { inherits \"b\" }\nrole \"b\" { inherits \"c\" }\nrole \"c\" { inherits \"a\" }\nrole \"d\" { inherits \"d\" }\n",
        );
        let cycles: Vec<_> = d
            .items
            .iter()
            .filter(|x| x.code == codes::INHERITANCE_CYCLE)
            .collect();
        assert_eq!(cycles.len(), 2, "{cycles:?}");
        assert!(
            cycles[0].message.contains("`a` → `b` → `c` → `a`"),
            "{}",
            cycles[0].message
        );
    }

    #[test]
    fn selectors_match_declared_tables() {
        let (m, d) = resolve_text(&format!(
            "{CAT}\nrole \"a\" {{\n allow \"select\" table=\"public.*\" {{ column-tag \"pii\" }}\n allow \"*\" tag=\"crm\"\n}}\n"
        ));
        assert!(d.items.is_empty(), "{:?}", d.items);
        let a0 = m.rules[0].access().unwrap();
        // Only customers has a pii column; orders is dropped.
        assert_eq!(a0.target.tables.len(), 1);
        assert_eq!(a0.target.tables[0].1.as_ref().unwrap().to_vec(), vec![0]);
        assert_eq!(a0.undeclared_pattern(), None);
        let a1 = m.rules[1].access().unwrap();
        assert!(!a1.classes.contains(StatementClass::Unknown));
        assert!(a1.classes.contains(StatementClass::Notify));
        assert_eq!(a1.target.tables.len(), 1);
    }
}
