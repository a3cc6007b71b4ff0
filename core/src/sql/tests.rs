//! Unit tests of the statement splitter (private to this module).

use super::next_statement;

fn split(sql: &str) -> Vec<(&str, Option<&'static str>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut work = 0;
    let mut toks = super::Window::default();
    while let Some((s, e, next, err, _)) = next_statement(sql, pos, &mut work, &mut toks) {
        out.push((&sql[s..e], err));
        if next <= pos {
            break;
        }
        pos = next;
    }
    out
}

#[test]
fn splits_at_top_level_semicolons_only() {
    assert_eq!(
        split("SELECT 1; DROP TABLE x"),
        [("SELECT 1", None), ("DROP TABLE x", None)]
    );
    assert_eq!(
        split("SELECT (1;2); x"),
        [("SELECT (1;2)", None), ("x", None)]
    );
    assert_eq!(split("SELECT $$;$$;"), [("SELECT $$;$$", None)]);
    assert_eq!(split("SELECT ';' /* ; */ -- ;"), [("SELECT ';'", None)]);
    assert_eq!(split(";;  ;"), []);
    assert_eq!(split("/* only a comment */"), []);
}

#[test]
fn begin_atomic_needs_create_function_or_procedure() {
    let f = "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END";
    assert_eq!(split(&format!("{f}; SELECT 2")).len(), 2);
    // BEGIN as a transaction statement does not open a block.
    assert_eq!(split("BEGIN; SELECT 1; END;").len(), 3);
    // CREATE TABLE … with a column named begin does not either.
    assert_eq!(split("CREATE TABLE t (begin int); SELECT 1").len(), 2);
    // Nor a parameter called begin: the DROP is a statement of its own for the server.
    assert_eq!(
        split(
            "CREATE FUNCTION f(begin int) RETURNS int AS $$ select 1 $$ LANGUAGE sql; DROP TABLE t"
        )
        .len(),
        2
    );
    assert_eq!(
        split("CREATE PROCEDURE p() BEGIN ATOMIC SELECT CASE WHEN x THEN 1 END; SELECT 2; END; x")
            .len(),
        2
    );
}

#[test]
fn lex_error_takes_the_rest_of_the_string() {
    assert_eq!(
        split("SELECT 1; SELECT 'x; SELECT 2"),
        [
            ("SELECT 1", None),
            ("SELECT 'x; SELECT 2", Some("unterminated quoted string"))
        ]
    );
}
