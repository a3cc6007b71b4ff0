//! Name resolution through the search path, as PostgreSQL does it (`namespace.c`:
//! `RangeVarGetRelid`, `FuncnameGetCandidates`), with what pgate can know.
//!
//! What it is for: telling, for an unqualified relation or function name, which schemas it
//! may belong to. The parser (every statement shape) and the flat fast path both ask here,
//! so they cannot resolve a name differently.
//!
//! What it must never do: pick one schema when pgate cannot know PostgreSQL would pick it.
//! Where the catalog does not settle the question, every schema the name could resolve to
//! is returned, and the policy must allow the access under each of them.
//!
//! PostgreSQL's rules (docs, "The Schema Search Path"): `pg_catalog` is searched first
//! unless the path names it elsewhere; the path's schemas follow in order; `pg_temp` is
//! searched for relations only (and pgate does not model temporary tables: a name written
//! unqualified is attributed to the permanent schemas, which can only deny more). A
//! function call is resolved among the functions of that name in every schema of the path,
//! by argument types: a name that is not one of PostgreSQL's built-ins cannot be a
//! `pg_catalog` function, so it is some path schema's own.

use super::CatalogLookup;
use super::builtin_functions;

/// Schemas (path positions) a resolution may name at once: longer paths are given up on.
pub const MAX_RESOLVED_PATH: usize = 32;

/// The schemas an unqualified name may resolve to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    /// `pg_catalog` (implicitly first, or where the path names it).
    pub pg_catalog: bool,
    /// Bit `i`: the path's schema `i` (never `pg_catalog`, never `pg_temp`).
    pub path: u32,
}

impl Candidates {
    /// How many schemas: 0 means none (an empty path), 1 a single resolution.
    pub fn count(self) -> u32 {
        self.path.count_ones() + u32::from(self.pg_catalog)
    }
}

/// The path is longer than [`MAX_RESOLVED_PATH`].
#[derive(Clone, Copy, Debug)]
pub struct PathTooLong;

/// Where the unqualified relation `name` resolves, for a search path whose schemas
/// `path` yields in order.
///
/// - With a catalog: the first schema (implicit `pg_catalog` first) that declares the
///   table — a declared table is taken to be where the catalog says it is.
/// - Declared in no schema of the path (or no catalog): every schema of the path, and
///   `pg_catalog` too for a `pg_*` name (every relation of `pg_catalog` is called
///   `pg_*`, so no other name can be one of its tables).
pub fn relation<'p>(
    path: impl Iterator<Item = &'p str> + Clone,
    catalog: Option<&dyn CatalogLookup>,
    name: &str,
    pg_prefix: bool,
) -> Result<Candidates, PathTooLong> {
    let explicit_pg = path.clone().any(|s| s == "pg_catalog");
    if let Some(cat) = catalog {
        if !explicit_pg && cat.has_table("pg_catalog", name) {
            return Ok(Candidates {
                pg_catalog: true,
                path: 0,
            });
        }
        for (i, s) in path.clone().enumerate() {
            if i >= MAX_RESOLVED_PATH {
                return Err(PathTooLong);
            }
            if is_temp(s) || !cat.has_table(s, name) {
                continue;
            }
            return Ok(if s == "pg_catalog" {
                Candidates {
                    pg_catalog: true,
                    path: 0,
                }
            } else {
                Candidates {
                    pg_catalog: false,
                    path: 1 << i,
                }
            });
        }
    } else if pg_prefix {
        // Without a catalog, a `pg_*` name is taken to be the system's (the documented
        // choice the decider's `pg_catalog` rules are written for).
        return Ok(Candidates {
            pg_catalog: true,
            path: 0,
        });
    }
    let mut c = Candidates {
        pg_catalog: pg_prefix,
        path: 0,
    };
    for (i, s) in path.enumerate() {
        if i >= MAX_RESOLVED_PATH {
            return Err(PathTooLong);
        }
        if s == "pg_catalog" {
            c.pg_catalog |= pg_prefix;
        } else if !is_temp(s) {
            c.path |= 1 << i;
        }
    }
    Ok(c)
}

/// Where the unqualified function `name` may resolve.
///
/// - A built-in name: `pg_catalog` (reported as the caller's "unqualified" form, which
///   the decider checks against `pg_catalog` and every declared function of that name),
///   and also every path schema listed before an explicit `pg_catalog`, which PostgreSQL
///   searches first.
/// - Any other name: the schemas of the path whose catalog entry declares a function of
///   that name — all of them, as PostgreSQL picks among their overloads by argument
///   types — or, when the catalog declares it in none, every schema of the path. Never
///   `pg_catalog`. A schema is left out when every overload it has is hidden by an
///   earlier one (see [`hidden`]).
pub fn function<'p>(
    path: impl Iterator<Item = &'p str> + Clone,
    catalog: Option<&dyn CatalogLookup>,
    name: &str,
) -> Result<Candidates, PathTooLong> {
    let mut c = function_any(path.clone(), name)?;
    if let Some(cat) = catalog
        && !is_builtin_function(name)
    {
        let mut declared = 0u32;
        for (i, s) in path.clone().enumerate().take(MAX_RESOLVED_PATH) {
            if c.path & (1 << i) != 0 && cat.has_function(s, name) {
                declared |= 1 << i;
            }
        }
        if declared != 0 {
            c.path = declared & !hidden(path, cat, name, declared);
        }
    }
    Ok(c)
}

/// The schemas among `declared` (bits of path positions) whose every overload of `name`
/// is hidden by an overload of the same identity arguments in a schema earlier on the
/// path. PostgreSQL's `FuncnameGetCandidates` keeps, of candidates with identical
/// argument types, only the one earliest in the search path ("If the search path finds
/// multiple functions of identical argument types, only the one appearing earliest in
/// the path is considered", §10.3 Functions), so no call can reach a hidden one.
///
/// Only overload lists the catalog declares count (`function_overloads`; the compiler
/// refuses lists with `VARIADIC` or defaults, whose calls PostgreSQL matches by expanded
/// argument lists). Identity arguments carry the parameter names, so an overload reachable
/// by a named call (`f(x => 1)`) the earlier one does not accept is never called hidden.
fn hidden<'p>(
    path: impl Iterator<Item = &'p str> + Clone,
    cat: &dyn CatalogLookup,
    name: &str,
    declared: u32,
) -> u32 {
    let mut hidden = 0u32;
    for (j, later) in path.clone().enumerate().take(MAX_RESOLVED_PATH) {
        if declared & (1 << j) == 0 {
            continue;
        }
        let Some(theirs) = cat.function_overloads(later, name) else {
            continue;
        };
        let shadowed = |sig: &str| {
            path.clone()
                .enumerate()
                .take(j)
                .filter(|(i, _)| declared & (1 << i) != 0)
                .filter_map(|(_, s)| cat.function_overloads(s, name))
                .any(|ours| ours.split_terminator('\n').any(|o| o == sig))
        };
        if theirs.split_terminator('\n').all(shadowed) {
            hidden |= 1 << j;
        }
    }
    hidden
}

/// [`function`] without a catalog: every schema the name may be in.
fn function_any<'p>(
    mut path: impl Iterator<Item = &'p str> + Clone,
    name: &str,
) -> Result<Candidates, PathTooLong> {
    let builtin = is_builtin_function(name);
    let mut c = Candidates {
        pg_catalog: builtin,
        path: 0,
    };
    let explicit_pg = path.clone().any(|s| s == "pg_catalog");
    for i in 0.. {
        let Some(s) = path.next() else { break };
        if i >= MAX_RESOLVED_PATH {
            return Err(PathTooLong);
        }
        if s == "pg_catalog" {
            if builtin {
                break;
            }
            continue;
        }
        if is_temp(s) {
            // pg_temp is never searched for functions.
            continue;
        }
        if !builtin || explicit_pg {
            c.path |= 1 << i;
        }
    }
    Ok(c)
}

/// Whether `name` (normalised) is the name of a function in PostgreSQL's `pg_catalog`.
pub fn is_builtin_function(name: &str) -> bool {
    builtin_functions::NAMES
        .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
        .is_ok()
}

fn is_temp(schema: &str) -> bool {
    schema == "pg_temp" || schema.starts_with("pg_temp_")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cat(&'static [(&'static str, &'static str)]);
    impl CatalogLookup for Cat {
        fn has_table(&self, schema: &str, name: &str) -> bool {
            self.0.iter().any(|&(s, n)| s == schema && n == name)
        }
    }

    fn rel(path: &[&str], cat: Option<&Cat>, name: &str) -> Candidates {
        let cat = cat.map(|c| c as &dyn CatalogLookup);
        relation(path.iter().copied(), cat, name, name.starts_with("pg_")).unwrap()
    }

    #[test]
    fn the_builtin_list_is_sorted_and_knows_common_names() {
        assert!(
            builtin_functions::NAMES
                .windows(2)
                .all(|w| w[0].as_bytes() < w[1].as_bytes())
        );
        for n in [
            "lower",
            "count",
            "now",
            "generate_series",
            "set_config",
            "btrim",
        ] {
            assert!(is_builtin_function(n), "{n}");
        }
        for n in ["my_func", "order_total", "LOWER", "trim"] {
            assert!(!is_builtin_function(n), "{n}");
        }
    }

    #[test]
    fn a_declared_table_resolves_to_the_first_schema_declaring_it() {
        let cat = Cat(&[("other", "hidden"), ("compat", "visible")]);
        let c = rel(&["compat", "other"], Some(&cat), "hidden");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: false,
                path: 0b10
            }
        );
        let c = rel(&["compat", "other"], Some(&cat), "visible");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: false,
                path: 0b01
            }
        );
    }

    #[test]
    fn an_undeclared_table_may_be_in_every_schema_of_the_path() {
        let cat = Cat(&[]);
        let c = rel(&["compat", "other"], Some(&cat), "nowhere");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: false,
                path: 0b11
            }
        );
        let c = rel(&["compat", "other"], None, "nowhere");
        assert_eq!(c.count(), 2);
        // pg_temp is not attributed; pg_catalog only for pg_* names.
        let c = rel(&["pg_temp", "public", "pg_catalog"], Some(&cat), "t");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: false,
                path: 0b010
            }
        );
        let c = rel(&["public"], Some(&cat), "pg_thing");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: true,
                path: 0b1
            }
        );
        let c = rel(&["public"], None, "pg_thing");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: true,
                path: 0
            }
        );
    }

    #[test]
    fn pg_catalog_is_first_unless_the_path_places_it() {
        let cat = Cat(&[("pg_catalog", "pg_class"), ("public", "pg_class")]);
        assert!(rel(&["public"], Some(&cat), "pg_class").pg_catalog);
        let c = rel(&["public", "pg_catalog"], Some(&cat), "pg_class");
        assert_eq!(
            c,
            Candidates {
                pg_catalog: false,
                path: 0b01
            }
        );
    }

    #[test]
    fn functions_resolve_by_whether_the_name_is_a_builtin() {
        let f = |path: &[&str], n: &str| function(path.iter().copied(), None, n).unwrap();
        assert_eq!(
            f(&["public"], "lower"),
            Candidates {
                pg_catalog: true,
                path: 0
            }
        );
        assert_eq!(
            f(&["a", "b"], "my_func"),
            Candidates {
                pg_catalog: false,
                path: 0b11
            }
        );
        assert_eq!(
            f(&["a", "pg_catalog", "b"], "my_func"),
            Candidates {
                pg_catalog: false,
                path: 0b101
            }
        );
        // Schemas before an explicit pg_catalog are searched first, for built-in names too.
        assert_eq!(
            f(&["a", "pg_catalog", "b"], "lower"),
            Candidates {
                pg_catalog: true,
                path: 0b001
            }
        );
        assert_eq!(
            f(&["pg_temp", "a"], "my_func"),
            Candidates {
                pg_catalog: false,
                path: 0b10
            }
        );
        assert_eq!(f(&[], "my_func").count(), 0);
        // With a catalog: the schemas that declare it (overloads are picked by type).
        struct Funcs;
        impl CatalogLookup for Funcs {
            fn has_table(&self, _: &str, _: &str) -> bool {
                false
            }
            fn has_function(&self, s: &str, n: &str) -> bool {
                matches!((s, n), ("b", "f") | ("c", "f"))
            }
        }
        let g = |path: &[&str], n: &str| function(path.iter().copied(), Some(&Funcs), n).unwrap();
        assert_eq!(
            g(&["a", "b", "c"], "f"),
            Candidates {
                pg_catalog: false,
                path: 0b110
            }
        );
        assert_eq!(
            g(&["a", "b"], "other"),
            Candidates {
                pg_catalog: false,
                path: 0b11
            }
        );
    }
}

#[cfg(test)]
mod overload_tests {
    use super::*;

    /// Functions: (schema, name, overloads as the table stores them).
    struct Funcs(&'static [(&'static str, &'static str, Option<&'static str>)]);
    impl CatalogLookup for Funcs {
        fn has_table(&self, _: &str, _: &str) -> bool {
            false
        }
        fn has_function(&self, schema: &str, name: &str) -> bool {
            self.0.iter().any(|&(s, n, _)| s == schema && n == name)
        }
        fn function_overloads(&self, schema: &str, name: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|&&(s, n, _)| s == schema && n == name)
                .and_then(|&(_, _, o)| o)
        }
    }

    fn schemas(path: &[&'static str], cat: &Funcs, name: &str) -> Vec<&'static str> {
        let c = function(path.iter().copied(), Some(cat), name).unwrap();
        assert!(!c.pg_catalog, "{name} is not a built-in");
        (0..path.len())
            .filter(|i| c.path & (1 << i) != 0)
            .map(|i| path[i])
            .collect()
    }

    #[test]
    fn an_overload_of_identical_arguments_later_on_the_path_is_hidden() {
        let cat = Funcs(&[
            ("a", "f", Some("integer\n")),
            ("b", "f", Some("integer\n")),
            ("c", "f", Some("integer\ntext\n")),
        ]);
        // b's only overload is a's: never called. c has one a does not.
        assert_eq!(schemas(&["a", "b", "c"], &cat, "f"), ["a", "c"]);
        // Order matters: b first hides a.
        assert_eq!(schemas(&["b", "a"], &cat, "f"), ["b"]);
        // c's overloads are all in earlier schemas together (a has integer, d has text).
        let cat = Funcs(&[
            ("a", "g", Some("integer\n")),
            ("d", "g", Some("text\n")),
            ("c", "g", Some("integer\ntext\n")),
        ]);
        assert_eq!(schemas(&["a", "d", "c"], &cat, "g"), ["a", "d"]);
        // The overload without arguments is a line of its own.
        let cat = Funcs(&[("a", "h", Some("\n")), ("b", "h", Some("\n"))]);
        assert_eq!(schemas(&["a", "b"], &cat, "h"), ["a"]);
    }

    #[test]
    fn unknown_overloads_or_other_parameter_names_hide_nothing() {
        // An earlier schema whose overloads are not listed hides nothing, and a later one
        // whose overloads are not listed is never hidden.
        let cat = Funcs(&[
            ("a", "f", None),
            ("b", "f", Some("integer\n")),
            ("c", "f", None),
        ]);
        assert_eq!(schemas(&["a", "b", "c"], &cat, "f"), ["a", "b", "c"]);
        // Same types, another parameter name: `f(x => 1)` can still reach b's.
        let cat = Funcs(&[
            ("a", "f", Some("y integer\n")),
            ("b", "f", Some("x integer\n")),
        ]);
        assert_eq!(schemas(&["a", "b"], &cat, "f"), ["a", "b"]);
        // A schema not on the path hides nothing.
        let cat = Funcs(&[("a", "f", Some("integer\n")), ("b", "f", Some("integer\n"))]);
        assert_eq!(schemas(&["b"], &cat, "f"), ["b"]);
    }
}
