//! Names: dotted chains, schema resolution through the search path, and the table and function facts they become.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    pub(super) fn name_of(&self, t: &Token) -> R<Name> {
        Ok(Name::of_token(t, self.sql)?)
    }

    /// Any name token (keywords allowed): labels, option names, …
    pub(super) fn any_name_token(&mut self) -> R<Name> {
        let t = self.next();
        if !t.is_name() {
            return Err(Fail("expected a name"));
        }
        self.name_of(&t)
    }

    /// `a[.b[.c[.d]]]` with an optional trailing `.*` (when `allow_star`).
    pub(super) fn chain(&mut self, allow_star: bool) -> R<Chain> {
        let first = self.next();
        if !first.is_name() {
            return Err(Fail("expected a name"));
        }
        let mut c = Chain {
            parts: [first; MAX_NAME_PARTS],
            n: 1,
            star: false,
            first_kw: first.kw,
        };
        while self.at(Kind::Dot) {
            let t = self.peek_n(1);
            if t.is_op(self.sql, "*") && allow_star {
                self.next();
                self.next();
                c.star = true;
                break;
            }
            if !t.is_name() {
                break;
            }
            if c.n >= MAX_NAME_PARTS {
                return Err(Fail("name has too many parts"));
            }
            self.next();
            self.next();
            c.parts[c.n] = t;
            c.n += 1;
        }
        Ok(c)
    }

    pub(super) fn push(&mut self, s: &str) -> R<NameRef> {
        Ok(self.facts.push_name(s)?)
    }

    /// Pushes the normalised name of a name token (plain ASCII identifiers are folded
    /// straight into the arena).
    #[inline]
    pub(super) fn push_tok(&mut self, t: &Token) -> R<NameRef> {
        let (start, end) = (t.start as usize, t.end as usize);
        if t.kind == Kind::Ident
            && end.saturating_sub(start) <= crate::sql::lexer::MAX_IDENT_BYTES
            && let Some(n) = self
                .facts
                .push_ascii_lowercase(self.sql.as_bytes(), start, end)?
        {
            return Ok(n);
        }
        let n = self.name_of(t)?;
        self.push(n.as_str())
    }

    /// Schemas on the path in force for this statement (an error when that path is not
    /// known: see `crate::sql::PathState`).
    pub(super) fn path_len(&self) -> R<usize> {
        match *self.path {
            crate::sql::PathState::Unknown => Err(Fail(
                "search_path was changed earlier in this string in a way not followed",
            )),
            crate::sql::PathState::Set { n, .. } => Ok(n),
            crate::sql::PathState::Original => Ok(self.ctx.search_path.len()),
        }
    }

    /// Schema `i` of the path in force.
    pub(super) fn path_schema(&self, i: usize) -> &str {
        match *self.path {
            crate::sql::PathState::Set { names, n } if i < n => {
                names.get(i).map_or("", |&r| self.facts.name(r))
            }
            crate::sql::PathState::Set { .. } => "",
            _ => self.ctx.search_path.get(i).copied().unwrap_or(""),
        }
    }

    /// Schema `i` of the path in force, as a name in the facts arena.
    pub(super) fn path_schema_ref(&mut self, i: usize) -> R<NameRef> {
        if let crate::sql::PathState::Set { names, n } = *self.path
            && i < n
        {
            return Ok(names.get(i).copied().unwrap_or(NameRef::EMPTY));
        }
        match self.ctx.search_path.get(i).copied() {
            Some(s) => self.push(s),
            None => Ok(NameRef::EMPTY),
        }
    }

    /// The schemas the relation `c` may be in (see `crate::sql::resolve::relation`), and its
    /// normalised name in the arena.
    pub(super) fn relation_candidates(
        &mut self,
        c: &Chain,
    ) -> R<(crate::sql::resolve::Candidates, NameRef)> {
        let last = c.last();
        let n = self.path_len()?;
        let name_n = self.name_of(&last)?;
        let name = name_n.as_str();
        let cands = crate::sql::resolve::relation(
            (0..n).map(|i| self.path_schema(i)),
            self.ctx.catalog,
            name,
            name.starts_with("pg_"),
        )
        .map_err(|_| Fail("search_path has too many schemas to resolve a name through"))?;
        let r = self.push(name)?;
        Ok((cands, r))
    }

    /// The schema of candidate `k` of `cands`: `pg_catalog` first, then path positions.
    pub(super) fn candidate_schema(
        &mut self,
        cands: crate::sql::resolve::Candidates,
        k: u32,
    ) -> R<NameRef> {
        let mut k = k;
        if cands.pg_catalog {
            if k == 0 {
                return self.push("pg_catalog");
            }
            k -= 1;
        }
        let mut bits = cands.path;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            if k == 0 {
                return self.path_schema_ref(i);
            }
            k -= 1;
            bits &= bits - 1;
        }
        Ok(NameRef::EMPTY)
    }

    /// Resolves a relation name like PostgreSQL: qualified names are taken as written;
    /// unqualified ones as `crate::sql::resolve::relation` says. A name that may be in several
    /// schemas of the path is refused here (the statement is `unknown`): only a read in
    /// FROM is checked under each of them ([`Parser::read_access`]).
    /// The path is the caller's, or the one an earlier `SET search_path` of the same
    /// string set; if that could not be followed exactly, the statement is `unknown`.
    pub(super) fn resolve_table(&mut self, c: &Chain) -> R<QualifiedName> {
        if c.n >= 2 {
            let s = self.push_tok(&c.parts[c.n - 2])?;
            let n = self.push_tok(&c.last())?;
            return Ok(QualifiedName { schema: s, name: n });
        }
        if let Some(q) = self.resolve_simple(c)? {
            return Ok(q);
        }
        let (cands, name) = self.relation_candidates(c)?;
        if cands.count() > 1 {
            return Err(Fail(
                "an unqualified table the catalog does not declare may be in several schemas of the search path",
            ));
        }
        let schema = self.candidate_schema(cands, 0)?;
        Ok(QualifiedName { schema, name })
    }

    /// The commonest case, without a catalog lookup: a plain identifier, the caller's path
    /// of at most one schema, no catalog.
    pub(super) fn resolve_simple(&mut self, c: &Chain) -> R<Option<QualifiedName>> {
        let last = c.last();
        if c.n == 1
            && last.kind == Kind::Ident
            && self.ctx.catalog.is_none()
            && self.ctx.search_path.len() <= 1
            && matches!(*self.path, crate::sql::PathState::Original)
            && let Some(b) = self
                .sql
                .as_bytes()
                .get(last.start as usize..last.end as usize)
            && b.is_ascii()
        {
            let schema = if b.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(b"pg_")) {
                Some("pg_catalog")
            } else {
                self.ctx.search_path.first().copied()
            };
            let s = match schema {
                Some(s) => self.push(s)?,
                None => NameRef::EMPTY,
            };
            let n = self.push_tok(&last)?;
            return Ok(Some(QualifiedName { schema: s, name: n }));
        }
        Ok(None)
    }

    /// Where a relation created by this statement goes: as written, else the first schema
    /// of the path (PostgreSQL's creation namespace).
    pub(super) fn creation_name(&mut self, c: &Chain) -> R<QualifiedName> {
        if c.n >= 2 {
            return self.resolve_table(c);
        }
        self.path_len()?;
        let schema = self.path_schema_ref(0)?;
        let name = self.push_tok(&c.last())?;
        Ok(QualifiedName { schema, name })
    }

    /// A `select` read of the relation `c`: one access per schema it may resolve to (see
    /// `crate::sql::resolve::relation`). Returns the first access and the bits of all of them.
    pub(super) fn read_access(&mut self, c: &Chain) -> R<(u8, QualifiedName, u64)> {
        if c.n >= 2 {
            let q = self.resolve_table(c)?;
            let r = self.push_access(StatementClass::Select, q)?;
            return Ok((r, q, 1u64 << r));
        }
        if let Some(q) = self.resolve_simple(c)? {
            let r = self.push_access(StatementClass::Select, q)?;
            return Ok((r, q, 1u64 << r));
        }
        let (cands, name) = self.relation_candidates(c)?;
        let mut first = None;
        let mut bits = 0u64;
        for k in 0..cands.count().max(1) {
            let schema = self.candidate_schema(cands, k)?;
            let q = QualifiedName { schema, name };
            let r = self.push_access(StatementClass::Select, q)?;
            bits |= 1u64 << r;
            first.get_or_insert((r, q));
        }
        let (r, q) = first.ok_or(Fail("no access"))?;
        Ok((r, q, bits))
    }

    pub(super) fn push_access(&mut self, class: StatementClass, name: QualifiedName) -> R<u8> {
        let idx = self.facts.push_table(TableAccess { class, name })?;
        Ok(idx as u8)
    }

    /// Records a call of the function named by `c` (unqualified: empty schema, see
    /// [`FunctionRef`]).
    ///
    /// An unqualified name is resolved as `crate::sql::resolve::function` says: a built-in (or
    /// a grammar form such as `trim(…)`, always PostgreSQL's) is recorded unqualified; any
    /// other name once under each schema of the path, where PostgreSQL looks for it.
    pub(super) fn push_function(&mut self, c: &Chain) -> R<()> {
        if c.n >= 2 {
            let s = self.push_tok(&c.parts[c.n - 2])?;
            let n = self.push_tok(&c.last())?;
            self.facts
                .push_function(FunctionRef::call(QualifiedName { schema: s, name: n }))?;
            return Ok(());
        }
        let t = c.last();
        let n = self.push_tok(&t)?;
        let grammar = t.kind == Kind::Ident
            && (SPECIAL_SYNTAX_FUNCS.contains(&t.kw)
                || GRAMMAR_FUNCTIONS.contains(&self.facts.name(n)));
        let cands = if grammar {
            crate::sql::resolve::Candidates {
                pg_catalog: true,
                path: 0,
            }
        } else {
            let len = match self.path_len() {
                Ok(len) => len,
                // A built-in stays PostgreSQL's whatever the path; anything else needs it.
                Err(_) if crate::sql::resolve::is_builtin_function(self.facts.name(n)) => 0,
                Err(e) => return Err(e),
            };
            crate::sql::resolve::function(
                (0..len).map(|i| self.path_schema(i)),
                self.ctx.catalog,
                self.facts.name(n),
            )
            .map_err(|_| Fail("search_path has too many schemas to resolve a name through"))?
        };
        if cands.pg_catalog || cands.count() == 0 {
            self.facts.push_function(FunctionRef::call(QualifiedName {
                schema: NameRef::EMPTY,
                name: n,
            }))?;
        }
        let mut bits = cands.path;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let s = self.path_schema_ref(i)?;
            self.facts
                .push_function(FunctionRef::call(QualifiedName { schema: s, name: n }))?;
        }
        Ok(())
    }

    /// Attribute notation: `x.f` or `(expr).f` calls `f(x)` when `f` is not a column (see
    /// [`FunctionRef::unless_column`]). Recorded for each path schema whose catalog entry
    /// declares a function `f` (built-ins take no row argument the parser could be
    /// reading); `column`: the column reference `x.f`, if this is one.
    pub(super) fn push_attribute_function(&mut self, t: &Token, column: Option<usize>) -> R<()> {
        let Some(cat) = self.ctx.catalog else {
            return Ok(());
        };
        let name = self.name_of(t)?;
        if crate::sql::resolve::is_builtin_function(name.as_str()) {
            return Ok(());
        }
        let len = self.path_len()?;
        let unless_column = match column {
            Some(c) => u16::try_from(c).map_err(|_| Fail("too many columns"))?,
            None => FunctionRef::ALWAYS,
        };
        let mut n = None;
        for i in 0..len.min(crate::sql::resolve::MAX_RESOLVED_PATH) {
            if !cat.has_function(self.path_schema(i), name.as_str()) {
                continue;
            }
            let schema = self.path_schema_ref(i)?;
            let fname = match n {
                Some(r) => r,
                None => *n.insert(self.push(name.as_str())?),
            };
            self.facts.push_function(FunctionRef {
                name: QualifiedName {
                    schema,
                    name: fname,
                },
                unless_column,
            })?;
        }
        Ok(())
    }

    pub(super) fn push_function_str(&mut self, name: &str) -> R<()> {
        let s = self.push("pg_catalog")?;
        let n = self.push(name)?;
        self.facts
            .push_function(FunctionRef::call(QualifiedName { schema: s, name: n }))?;
        Ok(())
    }
}
