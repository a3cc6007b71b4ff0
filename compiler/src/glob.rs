//! Name globs for table and function selectors (`staging.*`, `pg_catalog.*`, `*`).
//!
//! The only wildcard is `*`. In a pattern that contains a dot, `*` matches any run of
//! characters *within one dotted part* (it never crosses a `.`); in a pattern without a
//! dot, `*` matches anything. This is the meaning [`pgate_core::table::model::PatternRule`]
//! documents for the data plane, so compiled verdicts over declared names and runtime
//! verdicts over undeclared names agree. Matching is iterative (no recursion, no
//! backtracking blow-up) and never allocates.

/// Whether `pattern` contains a wildcard.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains('*')
}

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let dotted = pattern.contains('.');
    let p = pattern.as_bytes();
    let n = name.as_bytes();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtrack point: (pattern index after the star, name index the star resumes from).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi + 1, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // Let the star absorb one more character, unless that character is a dot and
            // stars may not cross dots.
            if dotted && n[sn] == b'.' {
                return false;
            }
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether some name matches both `a` and `b` (each with its own dot rule).
pub fn overlaps(a: &str, b: &str) -> bool {
    let (pa, pb) = (a.as_bytes(), b.as_bytes());
    let (da, db) = (a.contains('.'), b.contains('.'));
    let (la, lb) = (pa.len(), pb.len());
    // reach[i][j]: a[..i] and b[..j] can produce a common prefix ending together.
    let w = lb + 1;
    let mut reach = vec![false; (la + 1) * w];
    let mut todo = vec![(0usize, 0usize)];
    while let Some((i, j)) = todo.pop() {
        let Some(seen) = reach.get_mut(i * w + j) else {
            continue;
        };
        if *seen {
            continue;
        }
        *seen = true;
        let ca = pa.get(i).copied();
        let cb = pb.get(j).copied();
        match (ca, cb) {
            (Some(b'*'), _) | (_, Some(b'*')) => {
                if ca == Some(b'*') {
                    // The star of `a` produces nothing more…
                    todo.push((i + 1, j));
                    // …or absorbs one literal of `b` (never a dot when `a` is dotted).
                    if let Some(c) = cb
                        && c != b'*'
                        && !(da && c == b'.')
                    {
                        todo.push((i, j + 1));
                    }
                }
                if cb == Some(b'*') {
                    todo.push((i, j + 1));
                    if let Some(c) = ca
                        && c != b'*'
                        && !(db && c == b'.')
                    {
                        todo.push((i + 1, j));
                    }
                }
            }
            (Some(x), Some(y)) if x == y => todo.push((i + 1, j + 1)),
            _ => {}
        }
    }
    reach.get(la * w + lb).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_alone_matches_everything() {
        assert!(matches("*", "public.orders"));
        assert!(matches("*", ""));
        assert!(matches("pub*", "public.orders"));
    }

    #[test]
    fn dotted_patterns_stay_within_a_part() {
        assert!(matches("staging.*", "staging.orders"));
        assert!(!matches("staging.*", "staging.a.b"));
        assert!(!matches("staging.*", "prod.orders"));
        assert!(matches("*.orders", "public.orders"));
        assert!(!matches("*.orders", "a.b.orders"));
        assert!(matches("pg_catalog.pg_*", "pg_catalog.pg_read_file"));
        assert!(!matches("pg_catalog.pg_*", "pg_catalog.lower"));
        assert!(matches("s*.o*s", "staging.orders"));
        assert!(!matches("s*.o*s", "staging.ordersx"));
    }

    #[test]
    fn overlapping_globs() {
        assert!(overlaps("*", "staging.*"));
        assert!(overlaps("staging.*", "*.orders"));
        assert!(!overlaps("staging.*", "prod.*"));
        assert!(!overlaps("staging.*", "staging.a.b"));
        assert!(overlaps("s*", "staging.a.b"));
        assert!(!overlaps("a.*", "a*b.c"));
        assert!(overlaps("public.t", "public.t"));
        assert!(!overlaps("public.t", "public.u"));
    }

    #[test]
    fn exact_names() {
        assert!(matches("public.t", "public.t"));
        assert!(!matches("public.t", "public.tt"));
        assert!(!is_glob("public.t"));
        assert!(is_glob("public.*"));
    }
}
