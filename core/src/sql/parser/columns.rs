//! Columns: which tables in scope an identifier can read, and the column facts it becomes.

use super::*;

impl<'a, 'f, 'c> Parser<'a, 'f, 'c> {
    /// The read access of scope entry `i`, created on first use for DML targets.
    pub(super) fn entry_read(&mut self, i: usize) -> R<Option<u8>> {
        let Some(kind) = self.scopes.get(i).map(|e| e.kind) else {
            return Ok(None);
        };
        match kind {
            EntryKind::Derived | EntryKind::Join { .. } => Ok(None),
            EntryKind::Base { read: Some(r), .. } => Ok(Some(r)),
            EntryKind::Base {
                read: None, name, ..
            } => {
                let r = self.push_access(StatementClass::Select, name)?;
                self.scopes.set_read(i, r);
                Ok(Some(r))
            }
        }
    }

    /// The accesses entry `i` reads columns through: one for a base table, the joined
    /// tables' for a join alias, none for a derived table.
    pub(super) fn entry_bits(&mut self, i: usize) -> R<u64> {
        if let Some(EntryKind::Join { reads }) = self.scopes.get(i).map(|e| e.kind) {
            return Ok(reads);
        }
        self.base_bits(i)
    }

    /// The accesses of entry `i` if it is a base table (its read and its alternatives).
    pub(super) fn base_bits(&mut self, i: usize) -> R<u64> {
        let alts = match self.scopes.get(i).map(|e| e.kind) {
            Some(EntryKind::Base { alts, .. }) => alts,
            _ => 0,
        };
        Ok(self.entry_read(i)?.map_or(0, |r| 1u64 << r) | alts)
    }

    /// `FOR UPDATE|SHARE` of entry `i`: a `lock` access of its table (of each schema its
    /// name may resolve to) if it is a base table.
    pub(super) fn lock_entry(&mut self, i: usize) -> R<()> {
        let Some(EntryKind::Base { name, alts, .. }) = self.scopes.get(i).map(|e| e.kind) else {
            return Ok(());
        };
        self.push_access(StatementClass::Lock, name)?;
        let mut bits = alts;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(a) = self.facts.current_table(k) {
                self.push_access(StatementClass::Lock, a.name)?;
            }
        }
        Ok(())
    }

    /// Whether the name token `t` is one of the names of the alias column list whose
    /// tokens are `list` (`(` to after `)`). A name not in the list is the table's own
    /// column of that name (PostgreSQL renames only the first columns).
    pub(super) fn in_alias_list(&mut self, list: (u32, u32), t: &Token) -> R<bool> {
        let name = self.name_of(t)?;
        for k in (list.0 as usize + 1)..(list.1 as usize).saturating_sub(1) {
            let u = self.tok(k);
            if u.is_name() && self.name_of(&u)? == name {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every base table visible here (all levels: see the module docs).
    pub(super) fn visible_bases(&mut self) -> R<u64> {
        let mut m = 0u64;
        for i in 0..self.scopes.len() {
            m |= self.base_bits(i)?;
        }
        Ok(m)
    }

    /// Base tables of the current level (what `*` expands to).
    pub(super) fn level_bases(&mut self) -> R<u64> {
        let mut m = 0u64;
        let level = self.scopes.level;
        for i in 0..self.scopes.len() {
            if self.scopes.get(i).is_some_and(|e| e.level == level) {
                m |= self.base_bits(i)?;
            }
        }
        Ok(m)
    }

    pub(super) fn push_column(
        &mut self,
        name: ColumnName,
        candidates: u64,
        whole_row: u64,
        qualified: bool,
        clause: Clause,
    ) -> R<()> {
        self.facts.push_column(ColumnRef {
            name,
            candidates,
            whole_row,
            qualified,
            clause,
            output_alias: false,
            // An INSERT's target column is written: it reads nothing.
            plain: clause == Clause::InsertColumns,
        })?;
        Ok(())
    }

    /// A column reference written as `c` (no function call, no typed literal).
    pub(super) fn column_ref(&mut self, c: &Chain, clause: Clause) -> R<()> {
        if c.n == 1 && !c.star {
            let tok = c.parts[0];
            let candidates = self.visible_bases()?;
            let mut whole = 0u64;
            let mut renamed = 0u64;
            for i in 0..self.scopes.len() {
                let Some(e) = self.scopes.get(i) else { break };
                let named = e.name.eq_token(&tok, self.sql);
                let ren = match e.renamed {
                    Some(list) => self.in_alias_list(list, &tok)?,
                    None => false,
                };
                if named || ren {
                    let b = self.entry_bits(i)?;
                    if named {
                        whole |= b;
                    }
                    if ren {
                        renamed |= b;
                    }
                }
            }
            if renamed != 0 {
                // The name is one an alias column list gave a column of these tables by
                // position: which column is not known here, so every one is read.
                self.push_column(ColumnName::All, renamed, 0, false, clause)?;
            }
            let n = self.push_tok(&c.parts[0])?;
            return self.push_column(ColumnName::Named(n), candidates, whole, false, clause);
        }
        // Qualified: find the qualifier among the visible FROM items. `a.b.c` is
        // `schema.table.column` or `table.column.field`: try both.
        let (qual_idx, col): (Option<usize>, Option<Token>) = if c.star {
            (self.scopes.find(&self.name_of(&c.last())?), None)
        } else {
            let mut found = (None, Some(c.last()));
            let mut k = c.n - 1;
            while k > 0 {
                if let Some(i) = self.scopes.find(&self.name_of(&c.parts[k - 1])?) {
                    found = (Some(i), Some(c.parts[k]));
                    break;
                }
                k -= 1;
            }
            found
        };
        let candidates = match qual_idx {
            Some(i) => self.entry_bits(i)?,
            // Not a FROM item we know: be conservative, any visible table.
            None => self.visible_bases()?,
        };
        // Through an alias column list (`x(a, b)`), `x.a` is the table's column at a
        // position, not the one called `a`: every column is read.
        let list = qual_idx
            .and_then(|i| self.scopes.get(i))
            .and_then(|e| e.renamed);
        let renamed = match (list, col) {
            (Some(list), Some(t)) => self.in_alias_list(list, &t)?,
            _ => false,
        };
        let name = match col {
            Some(t) if !renamed => ColumnName::Named(self.push_tok(&t)?),
            _ => ColumnName::All,
        };
        self.push_column(name, candidates, 0, true, clause)?;
        if let (Some(t), false) = (col, renamed) {
            let idx = self.facts.current_columns_mut().len().saturating_sub(1);
            self.push_attribute_function(&t, Some(idx))?;
        }
        Ok(())
    }
}
