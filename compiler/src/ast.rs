//! The typed syntax tree of a policy: what the KDL said, with a span on everything.
//!
//! Produced by [`crate::parse`], consumed by [`crate::resolve`]. Nothing here is checked
//! against anything else yet (names may be unknown, tables undeclared); the tree only
//! guarantees the *shape* of each node. It must never hold KDL types or decide policy.

use pgate_core::table::model::{MaskKind, OnExceed, RateScope};

use crate::source::Span;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

pub type Name = Spanned<String>;

#[derive(Clone, Debug, Default)]
pub struct Ast {
    pub tables: Vec<TableNode>,
    pub functions: Vec<FunctionNode>,
    pub roles: Vec<RoleNode>,
    pub invariants: Vec<InvariantNode>,
    pub tests: Vec<TestNode>,
    /// `catalog "postgresql"`: the built-in declarations of PostgreSQL's system catalogs.
    pub catalogs: Vec<Name>,
}

#[derive(Clone, Debug)]
pub struct TableNode {
    pub name: Name,
    pub span: Span,
    pub columns: Vec<ColumnNode>,
    pub tags: Vec<Name>,
}

#[derive(Clone, Debug)]
pub struct ColumnNode {
    pub name: Name,
    pub tags: Vec<Name>,
}

#[derive(Clone, Debug)]
pub struct FunctionNode {
    pub name: Name,
    pub span: Span,
    pub tags: Vec<Name>,
    /// `overloads "…" …`: every overload's identity arguments (see `schema --from`).
    pub overloads: Option<Vec<Name>>,
}

#[derive(Clone, Debug)]
pub struct RoleNode {
    pub name: Name,
    pub span: Span,
    pub members: Vec<MemberNode>,
    pub inherits: Vec<Name>,
    pub rules: Vec<RuleNode>,
    /// `delegated actor="…" min-depth=N { … }`: rules for the role's sessions that carry
    /// an RFC 8693 `act` chain.
    pub delegated: Vec<DelegatedNode>,
}

/// `delegated { … }`: what applies on top of the role's rules when a session's token
/// carries an `act` chain at least `min_depth` long (and, with `actor`, naming that actor
/// at any depth). Only narrowing rules: deny, deny-function, mask, limit, rate, token.
#[derive(Clone, Debug)]
pub struct DelegatedNode {
    pub span: Span,
    pub actor: Option<Name>,
    /// At least 1 (`delegated` alone: any chain).
    pub min_depth: u32,
    pub rules: Vec<RuleNode>,
}

#[derive(Clone, Debug)]
pub struct MemberNode {
    pub claim: Name,
    pub value: Name,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AstEffect {
    Allow,
    Deny,
}

/// `table=` / `tag=` (either, both = intersection, none = every table).
#[derive(Clone, Debug, Default)]
pub struct TableSelector {
    pub table: Option<Name>,
    pub tag: Option<Name>,
}

/// `columns "a" "b"`, `column-tag "pii"` (union; none = every column).
#[derive(Clone, Debug, Default)]
pub struct ColumnSelector {
    pub columns: Vec<Name>,
    pub tags: Vec<Name>,
}

impl ColumnSelector {
    pub fn is_all(&self) -> bool {
        self.columns.is_empty() && self.tags.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct RuleNode {
    /// The whole node (used as the rule's location: its start is the rule's file:line:col).
    pub span: Span,
    /// The rule's source text on one line.
    pub text: String,
    pub body: RuleBodyNode,
}

#[derive(Clone, Debug)]
pub enum RuleBodyNode {
    Access {
        effect: AstEffect,
        classes: Vec<Name>,
        tables: TableSelector,
        columns: ColumnSelector,
    },
    Function {
        effect: AstEffect,
        patterns: Vec<Name>,
        tag: Option<Name>,
    },
    Mask {
        tables: TableSelector,
        columns: ColumnSelector,
        kind: Spanned<MaskKind>,
        /// `predicates="allow"`.
        predicates: bool,
    },
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
    /// `token sessions=N concurrent=M`: sessions per token (issuer and `jti`).
    TokenUse {
        sessions: Option<u32>,
        concurrent: Option<u32>,
        /// `binding="certificate"`.
        certificate: bool,
    },
    /// `delegation max-depth=N`: the longest `act` chain a session of the role may carry.
    Delegation { max_depth: u32 },
    /// `budget rows=N bytes="SIZE" per="hour|day" scope="identity"`.
    Budget {
        rows: Option<u64>,
        bytes: Option<u64>,
        window_secs: u32,
    },
}

#[derive(Clone, Debug)]
pub struct InvariantNode {
    pub name: Name,
    pub span: Span,
    pub forbids: Vec<ForbidNode>,
}

#[derive(Clone, Debug)]
pub struct ForbidNode {
    pub span: Span,
    pub text: String,
    pub classes: Vec<Name>,
    pub tables: TableSelector,
    pub columns: ColumnSelector,
    pub role: Option<Name>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Allow,
    Deny,
}

impl Expect {
    pub fn name(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TestNode {
    pub name: Name,
    pub span: Span,
    pub role: Name,
    /// `act "copilot" "tool"`: the session's RFC 8693 chain, outermost (current) first.
    pub act: Vec<Name>,
    pub sql: Spanned<String>,
    pub expect: Spanned<Expect>,
    /// `expect "deny" rule="roles.kdl:12"`: the deciding rule must be this one.
    pub expect_rule: Option<Name>,
    pub search_path: Vec<String>,
}
