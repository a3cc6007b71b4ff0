//! Any bytes (as text) classify without panicking, and unknown statements carry no facts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgate_core::class::{ClassSet, StatementClass};
use pgate_core::facts::Facts;
use pgate_core::sql::{ClassifyContext, classify};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let mut facts = Facts::default();
    classify(sql, &ClassifyContext::default(), &mut facts);
    for s in facts.statements() {
        assert!(s.end as usize <= sql.len());
        if s.classes.contains(StatementClass::Unknown) {
            assert_eq!(s.classes, ClassSet::single(StatementClass::Unknown));
            assert!(facts.tables(s).is_empty());
        }
    }
});
