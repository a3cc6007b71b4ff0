//! Delegation in a table: how long an RFC 8693 `act` chain a role admits, and which of its
//! delegated variants decides a session that carries one.
//!
//! A variant is a role of its own (cells, masks, caps, rates, token limits) that the
//! compiler made from a role's rules plus the `delegated` blocks that apply to a chain; it
//! has no members, so claims never grant it directly. This module only picks one; it must
//! never allocate (it runs at every login and table swap) and never widen: a chain that
//! meets no variant's conditions is decided by the granted role itself, which every
//! variant of it narrows.

use super::*;

/// A session's delegation chain is longer than its role admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelegationRefused {
    /// Actors in the chain.
    pub depth: usize,
    /// `delegation max-depth=`.
    pub max_depth: u32,
    /// The rule that sets it.
    pub rule: Option<u32>,
}

impl<'a> Table<'a> {
    pub(super) fn check_delegation(&self, r: &RoleRec) -> Result<(), LoadError> {
        self.check_rule(r.delegation_rule.get())?;
        let base = r.variant_of.get();
        if base == NONE {
            if r.min_depth.get() != 0 || r.actors_count.get() != 0 {
                return Err(LoadError::Malformed(
                    "delegation conditions on a granted role",
                ));
            }
            return Ok(());
        }
        let b = self
            .roles
            .get(base as usize)
            .ok_or(LoadError::Malformed("variant base out of range"))?;
        if b.variant_of.get() != NONE || r.members_count.get() != 0 || r.min_depth.get() == 0 {
            return Err(LoadError::Malformed(
                "variant of a variant, with members, or without a depth",
            ));
        }
        Self::check_range(
            r.actors_first.get(),
            r.actors_count.get(),
            self.actors.len(),
            "variant actors out of range",
        )?;
        let first = r.actors_first.get() as usize;
        for a in self
            .actors
            .get(first..first + r.actors_count.get() as usize)
            .unwrap_or(&[])
        {
            self.check_str(a)?;
        }
        Ok(())
    }

    /// The rule that makes `role` use delegation (its `delegation max-depth=`, or for a
    /// variant the first rule of its `delegated` blocks).
    pub(super) fn first_delegation_rule(&self, role: RoleId) -> Option<u32> {
        // Set only with `delegation max-depth=` or on a variant.
        none_to_opt(self.roles.get(role.0 as usize)?.delegation_rule.get())
    }

    /// `delegation max-depth=`: the longest chain `role` admits and the rule that says so.
    pub fn max_delegation_depth(&self, role: RoleId) -> Option<(u32, Option<u32>)> {
        let r = self.roles.get(role.0 as usize)?;
        (r.max_depth.get() != u32::MAX)
            .then(|| (r.max_depth.get(), none_to_opt(r.delegation_rule.get())))
    }

    /// For a delegated variant: the role claims grant, whose delegated sessions it decides.
    pub fn variant_base(&self, role: RoleId) -> Option<RoleId> {
        let r = self.roles.get(role.0 as usize)?;
        none_to_opt(r.variant_of.get()).map(RoleId)
    }

    /// For a delegated variant: the chain length and the actors it applies to.
    pub fn variant_condition(&self, role: RoleId) -> (u32, impl Iterator<Item = &'a str> + 'a) {
        let t = *self;
        let min_depth = self
            .roles
            .get(role.0 as usize)
            .map_or(0, |r| r.min_depth.get());
        let actors = self.role_range(self.actors, role, |r| (r.actors_first, r.actors_count));
        (min_depth, actors.iter().map(move |a| t.str(a)))
    }

    /// The role that decides a session of `granted` (a role claims grant) whose token
    /// carries the chain `actors` (outermost first; empty: not delegated): the variant of
    /// `granted` whose conditions the chain meets with the largest depth, then the most
    /// actors — `granted` itself when none applies. A chain longer than the role's
    /// `delegation max-depth=` is refused.
    pub fn role_for_chain<S: AsRef<str>>(
        &self,
        granted: RoleId,
        actors: &[S],
    ) -> Result<RoleId, DelegationRefused> {
        let depth = actors.len();
        if depth == 0 {
            return Ok(granted);
        }
        if let Some((max_depth, rule)) = self.max_delegation_depth(granted)
            && depth > max_depth as usize
        {
            return Err(DelegationRefused {
                depth,
                max_depth,
                rule,
            });
        }
        let mut best: Option<((u32, u32), RoleId)> = None;
        for (i, r) in self.roles.iter().enumerate() {
            if r.variant_of.get() != granted.0 || r.min_depth.get() as usize > depth {
                continue;
            }
            let (_, mut wanted) = self.variant_condition(RoleId(i as u32));
            if !wanted.all(|w| actors.iter().any(|a| a.as_ref() == w)) {
                continue;
            }
            let key = (r.min_depth.get(), r.actors_count.get());
            if best.is_none_or(|(k, _)| key > k) {
                best = Some((key, RoleId(i as u32)));
            }
        }
        Ok(best.map_or(granted, |(_, v)| v))
    }
}

impl DelegationRefused {
    /// The refusal as a client and an operator read it (PostgreSQL-style, one line): why,
    /// and the rule to change.
    pub fn describe(&self, table: &Table<'_>, role: RoleId) -> String {
        let rule = self
            .rule
            .and_then(|r| table.rule(r))
            .map(|r| format!(" (rule at {}:{})", r.file, r.line))
            .unwrap_or_default();
        let name = table.role_name(role);
        match self.max_depth {
            0 => format!(
                "role \"{name}\" admits no delegated sessions, and this token names {} actor(s) in its act claim{rule}",
                self.depth
            ),
            max => format!(
                "role \"{name}\" admits a delegation chain of at most {max} actor(s), and this token's act claim names {}{rule}",
                self.depth
            ),
        }
    }
}
