//! Name scopes of one statement: which FROM items (tables, aliases, derived tables) and
//! which CTE names are visible where.
//!
//! What it is for: deciding whether a name in FROM is a table or a CTE, and which table
//! accesses a column reference may belong to (its candidate mask).
//!
//! What it must never do: allocate or grow. Every stack here is a fixed array; running out
//! is an error the classifier turns into `unknown`.

use super::lexer::Name;
use crate::facts::QualifiedName;

/// FROM items (over all nesting levels) one statement may have in scope at once.
pub const MAX_SCOPE_ENTRIES: usize = 128;
/// CTE names visible at once.
pub const MAX_CTES: usize = 64;

/// What a FROM item is.
#[derive(Clone, Copy, Debug)]
pub enum EntryKind {
    /// A subquery, CTE reference, function, `excluded`, … : its columns are not base-table
    /// columns (they are checked inside, where they come from).
    Derived,
    /// A base relation. `read` is the index of the `select` access its columns are read
    /// through; for DML targets it is created on first read (PostgreSQL needs SELECT
    /// privilege only for columns an UPDATE/DELETE actually reads).
    Base {
        read: Option<u8>,
        name: QualifiedName,
        /// Further `select` accesses its columns are read through: the other schemas an
        /// unqualified name may resolve to (`resolve::relation`), each checked.
        alts: u64,
    },
    /// The alias of a parenthesised join (`(a JOIN b) AS j`): its columns are the joined
    /// tables' columns, read through these accesses (a bit mask).
    Join { reads: u64 },
}

#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The alias, or the relation name when there is none.
    pub name: Name,
    pub level: u16,
    pub kind: EntryKind,
    /// An alias column list renames its columns by position (`AS x(a, b)`): a name of
    /// that list used through it says nothing about which column of the table it is.
    /// The list's tokens, `(` to `)` (absolute token indexes of the statement).
    pub renamed: Option<(u32, u32)>,
}

/// The scope stack. Levels are query nesting levels (a subquery is one level deeper).
pub struct Scopes {
    entries: [Entry; MAX_SCOPE_ENTRIES],
    n: usize,
    pub level: u16,
    ctes: [Name; MAX_CTES],
    n_ctes: usize,
}

/// Running out of a fixed scope capacity.
#[derive(Clone, Copy, Debug)]
pub struct ScopeFull;

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            entries: [Entry {
                name: Name::default(),
                level: 0,
                kind: EntryKind::Derived,
                renamed: None,
            }; MAX_SCOPE_ENTRIES],
            n: 0,
            level: 0,
            ctes: [Name::default(); MAX_CTES],
            n_ctes: 0,
        }
    }
}

impl Scopes {
    pub fn reset(&mut self) {
        self.n = 0;
        self.level = 0;
        self.n_ctes = 0;
    }
    /// A mark to return to with [`Scopes::restore`] (for backtracking).
    pub fn mark(&self) -> (usize, u16, usize) {
        (self.n, self.level, self.n_ctes)
    }
    pub fn restore(&mut self, m: (usize, u16, usize)) {
        self.n = m.0.min(self.n);
        self.level = m.1;
        self.n_ctes = m.2.min(self.n_ctes);
    }
    pub fn push_level(&mut self) {
        self.level = self.level.saturating_add(1);
    }
    /// Leaves a level: its entries go out of scope.
    pub fn pop_level(&mut self) {
        while self.n > 0 && self.entries[self.n - 1].level >= self.level {
            self.n -= 1;
        }
        self.level = self.level.saturating_sub(1);
    }
    pub fn add(&mut self, name: Name, kind: EntryKind) -> Result<usize, ScopeFull> {
        if self.n >= MAX_SCOPE_ENTRIES {
            return Err(ScopeFull);
        }
        self.entries[self.n] = Entry {
            name,
            level: self.level,
            kind,
            renamed: None,
        };
        self.n += 1;
        Ok(self.n - 1)
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Entry `i` (by reference: entries are large, callers read a field or two).
    pub fn get(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i).filter(|_| i < self.n)
    }
    pub fn set_read(&mut self, i: usize, read: u8) {
        if let Some(e) = self.entries.get_mut(i).filter(|_| i < self.n)
            && let EntryKind::Base { read: r, .. } = &mut e.kind
        {
            *r = Some(read);
        }
    }
    pub fn set_renamed(&mut self, i: usize, list: Option<(u32, u32)>) {
        if let Some(e) = self.entries.get_mut(i).filter(|_| i < self.n) {
            e.renamed = list;
        }
    }
    /// Innermost visible entry called `name`.
    pub fn find(&self, name: &Name) -> Option<usize> {
        (0..self.n).rev().find(|&i| self.entries[i].name == *name)
    }

    pub fn cte_mark(&self) -> usize {
        self.n_ctes
    }
    pub fn cte_truncate(&mut self, mark: usize) {
        self.n_ctes = self.n_ctes.min(mark);
    }
    pub fn add_cte(&mut self, name: Name) -> Result<(), ScopeFull> {
        if self.n_ctes >= MAX_CTES {
            return Err(ScopeFull);
        }
        self.ctes[self.n_ctes] = name;
        self.n_ctes += 1;
        Ok(())
    }
    pub fn is_cte(&self, name: &Name) -> bool {
        self.ctes[..self.n_ctes].iter().any(|c| c == name)
    }
}
