//! Delegated variants: a role's `delegated` blocks compiled into roles of their own.
//!
//! A session whose token carries an RFC 8693 `act` chain (an agent, a tool, a service
//! acting for the token's subject) is decided by its role's rules plus every `delegated`
//! block whose conditions the chain meets: at least `min-depth` actors and, for a block
//! with `actor=`, that actor somewhere in the chain. For every role claims can grant, this
//! pass makes one role per distinct set of blocks a chain can meet — named after the
//! conditions, `support [delegated]`, `support [delegated depth>=2 actor=copilot]` — whose
//! rules are the role's plus those blocks'. From here on a variant is a role like any
//! other: [`crate::combine`] makes its cells, [`crate::verify`] holds it to the invariants,
//! `explain` and `diff` show it; the data plane picks it at login
//! (`Table::role_for_chain`: the largest depth, then the most actors, which is the set of
//! every block that applies).
//!
//! Blocks hold narrowing rules only (the parser refuses the others), and combining is
//! deny-overrides with the smallest cap winning, so a variant never allows what its role
//! does not. This pass must never make a variant for a role claims cannot grant (one
//! without members is only inherited), and never depends on the order of anything.

use std::collections::BTreeSet;

use pgate_core::table::model::MAX_DELEGATION_DEPTH;

use crate::diag::{Diagnostic, Diagnostics, codes};
use crate::resolve::{Model, Role, VariantOf};

/// Most variants one role may have (each is a role in the table).
pub const MAX_VARIANTS_PER_ROLE: usize = 64;
/// Most distinct `actor=` values among a role's blocks (variants grow as 2^actors).
pub const MAX_ACTORS_PER_ROLE: usize = 6;

/// The variant's name: the role's, then the conditions every session it decides meets.
pub fn variant_name(base: &str, min_depth: u32, actors: &[String]) -> String {
    let mut name = format!("{base} [delegated");
    if min_depth > 1 {
        name.push_str(&format!(" depth>={min_depth}"));
    }
    for a in actors {
        name.push_str(&format!(" actor={a}"));
    }
    name.push(']');
    name
}

/// Adds the variants of every role to `model.roles` (sorted by name again; every role
/// index in the model renumbered).
pub fn make_variants(model: &mut Model, diags: &mut Diagnostics) {
    let mut variants: Vec<Role> = Vec::new();
    for (ri, role) in model.roles.iter().enumerate() {
        if role.blocks.is_empty() || role.members.is_empty() {
            continue;
        }
        let blocks: Vec<(u32, u32, Option<&str>)> = role
            .blocks
            .iter()
            .filter_map(|&b| {
                let block = model.blocks.get(b as usize)?;
                Some((b, block.min_depth, block.actor.as_deref()))
            })
            .collect();
        let actors: Vec<&str> = blocks
            .iter()
            .filter_map(|(_, _, a)| *a)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if actors.len() > MAX_ACTORS_PER_ROLE {
            diags.push(
                Diagnostic::error(
                    codes::DELEGATION_LIMIT,
                    format!(
                        "role `{}` has `delegated` blocks for {} actors; at most {MAX_ACTORS_PER_ROLE}",
                        role.name,
                        actors.len()
                    ),
                )
                .label(role.span, "this role (with what it inherits)")
                .help("give the actors a role of their own, or one block without `actor=`"),
            );
            continue;
        }
        let depths: BTreeSet<u32> = blocks.iter().map(|(_, d, _)| *d).collect();
        let mut seen: BTreeSet<Vec<u32>> = BTreeSet::new();
        for subset in 0u32..(1 << actors.len()) {
            let chosen: Vec<&str> = actors
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, a)| *a)
                .collect();
            for &t in &depths {
                // A chain naming `chosen` has at least that many actors.
                let depth = t.max(chosen.len() as u32);
                if depth > MAX_DELEGATION_DEPTH {
                    continue;
                }
                let applied: Vec<u32> = blocks
                    .iter()
                    .filter(|(_, d, a)| *d <= depth && a.is_none_or(|a| chosen.contains(&a)))
                    .map(|(b, _, _)| *b)
                    .collect();
                if applied.is_empty() || !seen.insert(applied.clone()) {
                    continue;
                }
                // The weakest conditions under which exactly these blocks apply.
                let min_depth = blocks
                    .iter()
                    .filter(|(b, _, _)| applied.contains(b))
                    .map(|(_, d, _)| *d)
                    .max()
                    .unwrap_or(1);
                let mut names: Vec<String> = blocks
                    .iter()
                    .filter(|(b, _, _)| applied.contains(b))
                    .filter_map(|(_, _, a)| a.map(str::to_string))
                    .collect();
                names.sort();
                names.dedup();
                let mut rules = role.rules.clone();
                for &b in &applied {
                    if let Some(block) = model.blocks.get(b as usize) {
                        rules.extend(block.rules.iter().copied());
                    }
                }
                rules.sort_unstable();
                rules.dedup();
                variants.push(Role {
                    name: variant_name(&role.name, min_depth, &names),
                    span: role.span,
                    members: Vec::new(),
                    parents: Vec::new(),
                    own_rules: Vec::new(),
                    rules,
                    own_blocks: Vec::new(),
                    blocks: applied.clone(),
                    variant: Some(VariantOf {
                        base: ri as u32,
                        min_depth,
                        actors: names,
                        blocks: applied,
                    }),
                });
            }
        }
        if seen.len() > MAX_VARIANTS_PER_ROLE {
            diags.push(
                Diagnostic::error(
                    codes::DELEGATION_LIMIT,
                    format!(
                        "role `{}`'s `delegated` blocks make {} combinations; at most {MAX_VARIANTS_PER_ROLE}",
                        role.name,
                        seen.len()
                    ),
                )
                .label(role.span, "this role (with what it inherits)")
                .help("merge blocks with the same `min-depth=`, or use fewer `actor=` values"),
            );
        }
    }
    if variants.is_empty() {
        return;
    }
    for v in &variants {
        if let Some(existing) = model
            .role_index(&v.name)
            .and_then(|i| model.roles.get(i as usize))
        {
            diags.push(
                Diagnostic::error(
                    codes::DUPLICATE,
                    format!("role `{}` has the name of a delegated variant", v.name),
                )
                .label(existing.span, "this role")
                .label(v.span, "whose delegated sessions are named so")
                .help("rename the role"),
            );
        }
    }

    // Sorted by name again, every role index renumbered.
    let mut all = std::mem::take(&mut model.roles);
    all.extend(variants);
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&a, &b| all[a].name.cmp(&all[b].name).then(a.cmp(&b)));
    let mut new_of = vec![0u32; all.len()];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new as u32;
    }
    let renumber = |i: &mut u32| {
        if let Some(&n) = new_of.get(*i as usize) {
            *i = n;
        }
    };
    let mut slots: Vec<Option<Role>> = all.into_iter().map(Some).collect();
    model.roles = order
        .iter()
        .filter_map(|&old| slots.get_mut(old).and_then(Option::take))
        .collect();
    for role in &mut model.roles {
        role.parents.iter_mut().for_each(renumber);
        if let Some(v) = &mut role.variant {
            renumber(&mut v.base);
        }
    }
    for rule in &mut model.rules {
        renumber(&mut rule.role);
    }
    for block in &mut model.blocks {
        renumber(&mut block.role);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use pgate_core::table::Table;

    use crate::diag::codes;

    const CAT: &str = "table \"public.t\" { columns \"id\" \"secret\" }\n";

    fn compile(roles: &str) -> crate::Compilation {
        crate::compile_str("p.kdl", &format!("{CAT}{roles}"))
    }

    fn codes_of(c: &crate::Compilation) -> Vec<&'static str> {
        c.diagnostics.items.iter().map(|d| d.code).collect()
    }

    #[test]
    fn one_variant_per_distinct_set_of_blocks_and_inherited_blocks_count() {
        let c = compile(
            "role \"base\" {\n allow \"select\" table=\"public.t\"\n delegated { deny \"select\" table=\"public.t\" { columns \"secret\" } }\n}\n\
             role \"a\" {\n member claim=\"g\" value=\"a\"\n inherits \"base\"\n\
              delegated actor=\"bot\" { limit rows=5 }\n delegated min-depth=2 { limit rows=1 }\n delegation max-depth=3\n}\n",
        );
        assert!(!c.has_errors(), "{:?}", c.diagnostics.items);
        let p = c.policy.as_ref().unwrap();
        let mut names: Vec<&str> = p.roles.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        // `base` has no members: it gets no variants (only inherited, never granted).
        assert_eq!(
            names,
            [
                "a",
                "a [delegated actor=bot]",
                "a [delegated depth>=2 actor=bot]",
                "a [delegated depth>=2]",
                "a [delegated]",
                "base"
            ]
        );
        let bytes = c.table_bytes().unwrap();
        let t = Table::parse(&bytes).unwrap();
        let a = t.role("a").unwrap();
        let rows = |chain: &[&str]| {
            let r = t.role_for_chain(a, chain).unwrap();
            (t.role_name(r).to_string(), t.limits(r).max_rows)
        };
        assert_eq!(rows(&[]), ("a".into(), None));
        assert_eq!(rows(&["x"]), ("a [delegated]".into(), None));
        assert_eq!(rows(&["bot"]), ("a [delegated actor=bot]".into(), Some(5)));
        assert_eq!(
            rows(&["x", "bot"]),
            ("a [delegated depth>=2 actor=bot]".into(), Some(1))
        );
        assert_eq!(
            rows(&["x", "y"]),
            ("a [delegated depth>=2]".into(), Some(1))
        );
        assert!(t.role_for_chain(a, &["1", "2", "3", "4"]).is_err());
        // The inherited block applies to every variant: the secret column is denied.
        let tid = t.table_id("public", "t").unwrap();
        let secret = t.column_id(tid, "secret").unwrap();
        let sel = pgate_core::StatementClass::Select;
        assert!(t.column_allowed(a, sel, tid, secret).0);
        for chain in [&["x"][..], &["bot"], &["x", "bot"], &["x", "y"]] {
            let r = t.role_for_chain(a, chain).unwrap();
            assert!(!t.column_allowed(r, sel, tid, secret).0, "{chain:?}");
        }
    }

    #[test]
    fn a_block_may_only_narrow() {
        for (body, code) in [
            (
                "allow \"select\" table=\"public.t\"",
                codes::DELEGATED_WIDENS,
            ),
            ("allow-function \"*\"", codes::DELEGATED_WIDENS),
            ("member claim=\"g\" value=\"b\"", codes::DELEGATED_WIDENS),
            ("inherits \"a\"", codes::DELEGATED_WIDENS),
            ("delegated { limit rows=1 }", codes::DELEGATED_WIDENS),
            ("delegation max-depth=1", codes::DELEGATED_WIDENS),
            (
                "mask table=\"public.t\" column=\"secret\" with=\"redact\" predicates=\"allow\"",
                codes::DELEGATED_WIDENS,
            ),
            ("", codes::MISSING_ARGUMENT),
        ] {
            let c = compile(&format!(
                "role \"a\" {{\n member claim=\"g\" value=\"a\"\n delegated {{ {body} }}\n}}\n"
            ));
            assert!(
                codes_of(&c).contains(&code),
                "{body}: {:?}",
                c.diagnostics.items
            );
            assert!(c.policy.is_none());
        }
    }

    #[test]
    fn bad_depths_actors_and_names_are_errors() {
        for roles in [
            "role \"a\" { member claim=\"g\" value=\"a\"\n delegated min-depth=0 { limit rows=1 } }\n",
            "role \"a\" { member claim=\"g\" value=\"a\"\n delegated min-depth=9 { limit rows=1 } }\n",
            "role \"a\" { member claim=\"g\" value=\"a\"\n delegated actor=\"\" { limit rows=1 } }\n",
            "role \"a\" { member claim=\"g\" value=\"a\"\n delegation max-depth=9 }\n",
            "role \"a\" { member claim=\"g\" value=\"a\"\n delegation }\n",
        ] {
            let c = compile(roles);
            assert!(c.has_errors(), "{roles}");
        }
        let many: String = (0..7)
            .map(|i| format!(" delegated actor=\"x{i}\" {{ limit rows=1 }}\n"))
            .collect();
        let c = compile(&format!(
            "role \"a\" {{ member claim=\"g\" value=\"a\"\n{many}}}\n"
        ));
        assert!(
            codes_of(&c).contains(&codes::DELEGATION_LIMIT),
            "{:?}",
            c.diagnostics.items
        );
        let c = compile(
            "role \"a\" { member claim=\"g\" value=\"a\"\n delegated { limit rows=1 } }\n\
             role \"a [delegated]\" { allow \"select\" }\n",
        );
        assert!(
            codes_of(&c).contains(&codes::DUPLICATE),
            "{:?}",
            c.diagnostics.items
        );
    }

    #[test]
    fn invariants_naming_a_role_hold_for_its_variants_and_masks_in_blocks_are_checked() {
        // A mask in a block on a column the variant cannot read is an error, like any.
        let c = compile(
            "role \"a\" { member claim=\"g\" value=\"a\"\n allow \"select\" table=\"public.t\" { columns \"id\" }\n\
              delegated { mask table=\"public.t\" column=\"secret\" with=\"redact\" } }\n",
        );
        assert!(
            codes_of(&c).contains(&codes::MASK_UNREADABLE),
            "{:?}",
            c.diagnostics.items
        );
        // Readable in the variant: fine, and the variant masks it.
        let c = compile(
            "role \"a\" { member claim=\"g\" value=\"a\"\n allow \"select\" table=\"public.t\"\n\
              delegated { mask table=\"public.t\" column=\"secret\" with=\"redact\" } }\n\
             invariant \"no copy for a\" { forbid \"copy-out\" role=\"a\" }\n",
        );
        assert!(!c.has_errors(), "{:?}", c.diagnostics.items);
        let bytes = c.table_bytes().unwrap();
        let t = Table::parse(&bytes).unwrap();
        let v = t.role("a [delegated]").unwrap();
        let tid = t.table_id("public", "t").unwrap();
        let secret = t.column_id(tid, "secret").unwrap();
        assert!(t.mask(v, tid, secret).is_some());
        assert!(t.mask(t.role("a").unwrap(), tid, secret).is_none());
    }
}
