//! Result masks through the sans-IO session, with the database's answers written by hand:
//! the plan comes from RowDescription's table OID and attribute number, the catalog is
//! waited for (nothing is read from the database meanwhile), values are rewritten, an
//! unknown relation is looked up before its rows pass, and pgate's own Describe before an
//! Execute is answered to pgate alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use std::sync::Arc;

use common::*;
use pgate::masks::catalog::{AttributeRow, CopyRelation, MaskCatalog, MaskIndex, RelationRow};
use pgate::masks::value::{Family, Format, HashKey, MaskAction, mask_value};
use pgate::session::{Action, CatalogAnswer, CatalogRequest, SessionConfig};
use pgate_core::table::Table;

const CUSTOMERS: u32 = 16_400;
const OTHER: u32 = 16_500;
const KEY: [u8; 32] = [7; 32];

fn masked() -> Sim {
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        upstream_user: "pgate_upstream".into(),
        mask_hash_key: Some(Arc::new(HashKey::new(KEY))),
        ..SessionConfig::default()
    });
    s.table = policy_masked();
    let login = s.connect();
    assert_eq!(login.last().map(|m| m.0), Some(b'Z'));
    s
}

fn attr(oid: u32, attnum: i16, name: &str, typ: u32, send: &str) -> AttributeRow {
    AttributeRow {
        oid,
        attnum,
        name: name.into(),
        type_oid: typ,
        base_type_oid: typ,
        send: send.into(),
        generated: false,
    }
}

fn rel(oid: u32, name: &str, natts: i16) -> RelationRow {
    RelationRow {
        oid,
        schema: "public".into(),
        relation: name.into(),
        natts,
    }
}

/// customers (id int4, name text, ssn text) at `oid`.
fn customers(oid: u32) -> Vec<AttributeRow> {
    vec![
        attr(oid, 1, "id", 23, "int4send"),
        attr(oid, 2, "name", 25, "textsend"),
        attr(oid, 3, "ssn", 25, "textsend"),
    ]
}

/// What the database's catalog says: customers at OID 16400, and `others` as relations
/// seen.
fn catalog(s: &Sim, others: &[u32]) -> Arc<MaskCatalog> {
    catalog_of(
        s,
        &[rel(CUSTOMERS, "customers", 3)],
        &customers(CUSTOMERS),
        others,
    )
}

fn catalog_of(
    s: &Sim,
    relations: &[RelationRow],
    attributes: &[AttributeRow],
    others: &[u32],
) -> Arc<MaskCatalog> {
    let t = Table::parse(&s.table).unwrap();
    let mut relations = relations.to_vec();
    relations.extend(others.iter().map(|o| rel(*o, &format!("other_{o}"), 1)));
    let index = MaskIndex::new(&t);
    Arc::new(MaskCatalog::build(&t, index, t.digest(), "app", &relations, attributes).unwrap())
}

/// The driver's answer with `catalog`, and the COPY's table (customers) if asked.
fn answered(s: &Sim, catalog: Arc<MaskCatalog>) -> CatalogAnswer {
    let t = Table::parse(&s.table).unwrap();
    let copy = s
        .session
        .catalog_request()
        .and_then(|r| r.copy_table)
        .and_then(|(_, name)| {
            (name == "customers").then(|| {
                CopyRelation::from_rows(&t, &[rel(CUSTOMERS, "customers", 3)], customers(CUSTOMERS))
                    .unwrap()
            })?
        });
    CatalogAnswer { catalog, copy }
}

fn request(oids: &[u32]) -> Option<CatalogRequest<'_>> {
    Some(CatalogRequest {
        database: "app",
        oids,
        copy_table: None,
    })
}

/// RowDescription of (table OID, attnum, type OID) fields, in `format`.
fn row_description(fields: &[(u32, i16, u32)], format: i16) -> Vec<u8> {
    let mut b = (fields.len() as i16).to_be_bytes().to_vec();
    for (i, (t, a, ty)) in fields.iter().enumerate() {
        b.extend(cstr(&format!("c{i}")));
        b.extend(t.to_be_bytes());
        b.extend(a.to_be_bytes());
        b.extend(ty.to_be_bytes());
        b.extend((-1i16).to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(format.to_be_bytes());
    }
    msg(b'T', &b)
}

fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = (values.len() as i16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(v) => {
                b.extend((v.len() as i32).to_be_bytes());
                b.extend(*v);
            }
            None => b.extend((-1i32).to_be_bytes()),
        }
    }
    msg(b'D', &b)
}

fn fields(d: &[u8]) -> Vec<Option<Vec<u8>>> {
    let n = i16::from_be_bytes([d[0], d[1]]);
    let mut p = 2;
    (0..n)
        .map(|_| {
            let l = i32::from_be_bytes(d[p..p + 4].try_into().unwrap());
            p += 4;
            if l < 0 {
                return None;
            }
            let v = d[p..p + l as usize].to_vec();
            p += l as usize;
            Some(v)
        })
        .collect()
}

fn hashed_text(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    mask_value(
        MaskAction::Hash,
        Family::Text,
        Format::Text,
        &HashKey::new(KEY),
        Some(v),
        &mut out,
    )
    .unwrap();
    out
}

/// Sends client bytes; returns what went upstream (not answered yet).
fn send(s: &mut Sim, bytes: &[u8]) -> Vec<u8> {
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_client(bytes, &table, &TestAuth, s.t, &mut s.scratch);
    let up = s.session.poll_upstream().to_vec();
    s.session.upstream_written(up.len());
    up
}

/// Feeds the database's answer; returns how much the session took.
fn answer(s: &mut Sim, bytes: &[u8]) -> usize {
    s.t.mono_us += 10;
    s.session.handle_upstream(bytes, s.t)
}

fn lookups(s: &mut Sim) -> usize {
    let mut n = 0;
    while let Some(a) = s.session.poll_action() {
        if a == Action::LookupCatalog {
            n += 1;
        }
    }
    n
}

fn to_client(s: &mut Sim) -> Vec<(u8, Vec<u8>)> {
    let out = s.session.poll_client().to_vec();
    s.session.client_written(out.len());
    messages(&out)
}

fn result(fields_: &[(u32, i16, u32)], rows: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
    let mut b = row_description(fields_, 0);
    for r in rows {
        b.extend(data_row(r));
    }
    b
}

#[test]
fn a_result_waits_for_the_catalog_then_comes_masked() {
    let mut s = masked();
    let up = send(&mut s, &query("select id, name, ssn from customers"));
    assert_eq!(up[0], b'Q');
    let mut reply = result(
        &[(CUSTOMERS, 1, 23), (CUSTOMERS, 2, 25), (CUSTOMERS, 3, 25)],
        &[
            vec![Some(b"1"), Some("Zoë".as_bytes()), Some(b"123-45-6789")],
            vec![Some(b"2"), None, Some(b"987")],
        ],
    );
    reply.extend(msg(b'C', &cstr("SELECT 2")));
    reply.extend(msg(b'Z', b"I"));
    // No catalog yet: nothing is taken, the driver is asked, and told not to read on.
    assert_eq!(answer(&mut s, &reply), 0);
    assert_eq!(lookups(&mut s), 1);
    assert!(s.session.upstream_paused());
    assert_eq!(s.session.catalog_request(), request(&[]));
    assert!(to_client(&mut s).is_empty());
    let table = Table::parse(&s.table).unwrap();
    let c = answered(&s, catalog(&s, &[]));
    s.session.handle_catalog(Ok(c), &table);
    assert!(!s.session.upstream_paused());
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    assert_eq!(tags(&r), "TDDCZ");
    assert_eq!(
        fields(&r[1].1),
        vec![
            Some(b"1".to_vec()),
            Some(hashed_text("Zoë".as_bytes())),
            Some(b"***".to_vec())
        ]
    );
    // NULL stays NULL; the id (unmasked) is as sent.
    assert_eq!(
        fields(&r[2].1),
        vec![Some(b"2".to_vec()), None, Some(b"***".to_vec())]
    );
    // The next result needs no lookup.
    send(&mut s, &query("select name from customers"));
    let mut reply = result(&[(CUSTOMERS, 2, 25)], &[vec![Some(b"Ada")]]);
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    assert_eq!(lookups(&mut s), 0);
    let r = to_client(&mut s);
    assert_eq!(fields(&r[1].1), vec![Some(hashed_text(b"Ada"))]);
}

#[test]
fn a_relation_the_catalog_has_not_seen_is_looked_up_before_its_rows_pass() {
    let mut s = masked();
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Ok(answered(&s, catalog(&s, &[]))), &table);
    send(&mut s, &query("select id, name from customers"));
    // A relation OID the snapshot does not know (created since, or customers created
    // again under a new OID).
    const NEW: u32 = 17_000;
    let mut reply = result(
        &[(NEW, 1, 23), (NEW, 2, 25)],
        &[vec![Some(b"1"), Some(b"Ada")]],
    );
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), 0);
    assert_eq!(lookups(&mut s), 1);
    assert_eq!(s.session.catalog_request(), request(&[NEW]));
    // The lookup says: it is customers, created again.
    let t = Table::parse(&tb).unwrap();
    let again = catalog(&s, &[])
        .extended(
            &t,
            &[rel(NEW, "customers", 2)],
            &[
                attr(NEW, 1, "id", 23, "int4send"),
                attr(NEW, 2, "name", 25, "textsend"),
            ],
            &[NEW],
        )
        .unwrap();
    let again = answered(&s, Arc::new(again));
    s.session.handle_catalog(Ok(again), &table);
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    assert_eq!(
        fields(&r[1].1),
        vec![Some(b"1".to_vec()), Some(hashed_text(b"Ada"))]
    );
}

#[test]
fn an_unmasked_relation_passes_byte_for_byte() {
    let mut s = masked();
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Ok(answered(&s, catalog(&s, &[OTHER]))), &table);
    send(&mut s, &query("select id from orders"));
    let mut reply = result(
        &[(OTHER, 1, 23), (0, 0, 25)],
        &[vec![Some(b"5"), Some(b"x")]],
    );
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    let mut got = Vec::new();
    for (t, b) in &r {
        got.extend(msg(*t, b));
    }
    assert_eq!(got, reply);
}

#[test]
fn pgate_describes_the_portal_before_execute_and_keeps_the_answer() {
    let mut s = masked();
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Ok(answered(&s, catalog(&s, &[]))), &table);
    let mut b = parse("", "select name from customers");
    b.extend(bind("", ""));
    b.extend(execute(""));
    b.extend(sync());
    let up = messages(&send(&mut s, &b));
    // Parse, Bind, pgate's Describe of the portal, Execute, Sync.
    assert_eq!(tags(&up), "PBDES");
    assert_eq!(up[2].1, b"P\0".to_vec());
    let mut reply = msg(b'1', &[]);
    reply.extend(msg(b'2', &[]));
    reply.extend(row_description(&[(CUSTOMERS, 2, 25)], 1));
    reply.extend(data_row(&[Some(b"Ada")]));
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    // The client did not ask for the RowDescription: it does not get it.
    assert_eq!(tags(&r), "12DCZ");
    assert_eq!(fields(&r[2].1), vec![Some(hashed_text(b"Ada"))]);

    // A failed Parse: the rest of the batch (pgate's Describe included) goes unanswered,
    // and the next batch is matched right.
    let up = messages(&send(&mut s, &b));
    assert_eq!(tags(&up), "PBDES");
    let mut reply = msg(b'E', b"SERROR\0C42601\0Msyntax error\0\0");
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    assert_eq!(tags(&to_client(&mut s)), "EZ");
    let mut b2 = parse("", "select name from customers");
    b2.extend(bind("", ""));
    b2.extend(msg(b'D', b"P\0"));
    b2.extend(execute(""));
    b2.extend(sync());
    let up = messages(&send(&mut s, &b2));
    assert_eq!(tags(&up), "PBDDES");
    let mut reply = msg(b'1', &[]);
    reply.extend(msg(b'2', &[]));
    reply.extend(row_description(&[(CUSTOMERS, 2, 25)], 0));
    reply.extend(row_description(&[(CUSTOMERS, 2, 25)], 0));
    reply.extend(data_row(&[Some(b"Bob")]));
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    // The client's own Describe is answered; pgate's is not.
    assert_eq!(tags(&r), "12TDCZ");
    assert_eq!(fields(&r[3].1), vec![Some(hashed_text(b"Bob"))]);
}

#[test]
fn a_row_without_its_row_description_ends_the_session() {
    let mut s = masked();
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Ok(answered(&s, catalog(&s, &[]))), &table);
    send(&mut s, &query("select name from customers"));
    let reply = data_row(&[Some(b"Ada")]);
    answer(&mut s, &reply);
    let r = to_client(&mut s);
    assert_eq!(tags(&r), "E");
    assert!(error_field(&r[0].1, b'M').contains("cannot mask"), "{r:?}");
    assert!(s.session.is_closed());
}

#[test]
fn a_catalog_that_cannot_be_had_ends_the_session_before_any_row() {
    let mut s = masked();
    send(&mut s, &query("select name from customers"));
    let mut reply = result(&[(CUSTOMERS, 2, 25)], &[vec![Some(b"Ada")]]);
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    assert_eq!(answer(&mut s, &reply), 0);
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Err("connection refused".into()), &table);
    let r = to_client(&mut s);
    assert_eq!(tags(&r), "E");
    assert!(error_field(&r[0].1, b'M').contains("connection refused"));
    assert!(s.session.is_closed());
}

#[test]
fn a_role_with_masks_gets_errors_without_their_detail() {
    let mut s = masked();
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Ok(answered(&s, catalog(&s, &[]))), &table);
    send(&mut s, &query("select name from customers"));
    // A DETAIL quoting a row: real values of masked columns.
    let mut reply = msg(
        b'E',
        b"SERROR\0C23502\0Mnull value in column \"x\" violates not-null constraint\0DFailing row contains (1, Ada, 123-45-6789).\0\0",
    );
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    assert_eq!(tags(&r), "EZ");
    assert_eq!(error_field(&r[0].1, b'C'), "23502");
    assert!(error_field(&r[0].1, b'M').contains("not-null"));
    assert!(!String::from_utf8_lossy(&r[0].1).contains("Ada"), "{r:?}");
}

/// A simple COPY answered by the database: CopyOutResponse (text, `n` columns), rows,
/// CopyDone, CommandComplete, ReadyForQuery.
fn copy_answer(n: i16, rows: &[&[u8]]) -> Vec<u8> {
    let mut h = vec![0u8];
    h.extend(n.to_be_bytes());
    for _ in 0..n {
        h.extend(0i16.to_be_bytes());
    }
    let mut b = msg(b'H', &h);
    for r in rows {
        b.extend(msg(b'd', r));
    }
    b.extend(msg(b'c', &[]));
    b.extend(msg(b'C', &cstr("COPY 1")));
    b.extend(msg(b'Z', b"I"));
    b
}

/// Feeds `reply` until the session takes it all, answering its catalog lookups.
fn answer_with_lookups(s: &mut Sim, reply: &[u8]) -> usize {
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    let mut taken = 0;
    let mut lookups_seen = 0;
    for _ in 0..5 {
        taken += answer(s, &reply[taken..]);
        let n = lookups(s);
        if n == 0 {
            break;
        }
        lookups_seen += n;
        s.session
            .handle_catalog(Ok(answered(s, catalog(s, &[]))), &table);
    }
    assert_eq!(taken, reply.len());
    lookups_seen
}

#[test]
fn a_copy_parsed_before_a_reload_gave_masks_is_masked_when_it_runs() {
    let mut s = Sim::new(SessionConfig {
        allow_plaintext_auth: true,
        upstream_user: "pgate_upstream".into(),
        mask_hash_key: Some(Arc::new(HashKey::new(KEY))),
        ..SessionConfig::default()
    });
    // No masks at first: the COPY is parsed (its plan recorded all the same).
    s.table = policy_customers_out(false);
    s.connect();
    let mut b = parse("c", "COPY customers TO STDOUT");
    b.extend(sync());
    send(&mut s, &b);
    let mut reply = msg(b'1', &[]);
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), reply.len());
    to_client(&mut s);
    // A reload masks customers.name; the statement runs after it.
    s.table = policy_masked();
    let mut b = bind("", "c");
    b.extend(execute(""));
    b.extend(sync());
    let up = messages(&send(&mut s, &b));
    assert_eq!(tags(&up), "BDES", "pgate describes the portal now");
    let mut reply = msg(b'2', &[]);
    reply.extend(msg(b'n', &[]));
    reply.extend(copy_answer(3, &[b"1\tAda\t123\n"]));
    // The snapshot, then the table's columns afresh for the COPY.
    assert_eq!(answer_with_lookups(&mut s, &reply), 2);
    let r = to_client(&mut s);
    assert_eq!(tags(&r), "2HdcCZ");
    let mut want = b"1\t".to_vec();
    want.extend(hashed_text(b"Ada"));
    want.extend(b"\t***\n");
    assert_eq!(r[2].1, want);
}

#[test]
fn a_reload_that_takes_the_masks_away_stops_rewriting_and_describing() {
    let mut s = masked();
    let tb = s.table.clone();
    let table = Table::parse(&tb).unwrap();
    s.session
        .handle_catalog(Ok(answered(&s, catalog(&s, &[]))), &table);
    // pgate's Describe is in flight when the reload comes.
    let mut b = parse("", "select name from customers");
    b.extend(bind("", ""));
    b.extend(execute(""));
    b.extend(sync());
    assert_eq!(tags(&messages(&send(&mut s, &b))), "PBDES");
    s.table = policy_customers_out(false);
    let mut reply = msg(b'1', &[]);
    reply.extend(msg(b'2', &[]));
    reply.extend(row_description(&[(CUSTOMERS, 2, 25)], 0));
    reply.extend(data_row(&[Some(b"Ada")]));
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    // The swap reaches the session with its next client bytes.
    let tb = s.table.clone();
    let t2 = Table::parse(&tb).unwrap();
    s.session.handle_table(&t2, &TestAuth);
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    // pgate's own RowDescription is still kept from the client; the row is as sent.
    assert_eq!(tags(&r), "12DCZ");
    assert_eq!(fields(&r[2].1), vec![Some(b"Ada".to_vec())]);
    // And the next Execute goes without pgate's Describe.
    assert_eq!(tags(&messages(&send(&mut s, &b))), "PBES");
}

/// The snapshot saw customers with two columns (ssn did not exist yet); the session has it.
fn without_ssn(s: &mut Sim) -> Arc<MaskCatalog> {
    let before = catalog_of(
        s,
        &[rel(CUSTOMERS, "customers", 2)],
        &customers(CUSTOMERS)[..2],
        &[],
    );
    let table = Table::parse(&s.table).unwrap();
    let a = answered(s, before.clone());
    s.session.handle_catalog(Ok(a), &table);
    before
}

/// The lookup of customers again, which now shows its first `columns` columns.
fn looked_up_again(s: &mut Sim, before: &MaskCatalog, columns: usize) {
    let table = Table::parse(&s.table).unwrap();
    let after = before
        .extended(
            &table,
            &[rel(CUSTOMERS, "customers", columns as i16)],
            &customers(CUSTOMERS)[..columns],
            &[CUSTOMERS],
        )
        .unwrap();
    let a = answered(s, Arc::new(after));
    s.session.handle_catalog(Ok(a), &table);
}

#[test]
fn a_column_added_after_the_lookup_is_looked_up_before_its_rows_pass() {
    let mut s = masked();
    let before = without_ssn(&mut s);
    send(&mut s, &query("select id, ssn from customers"));
    // ALTER TABLE customers ADD COLUMN ssn text: attribute 3, same relation OID.
    let mut reply = result(
        &[(CUSTOMERS, 1, 23), (CUSTOMERS, 3, 25)],
        &[vec![Some(b"1"), Some(b"123-45-6789")]],
    );
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), 0, "no row before the lookup");
    assert_eq!(lookups(&mut s), 1);
    assert_eq!(s.session.catalog_request(), request(&[CUSTOMERS]));
    looked_up_again(&mut s, &before, 3);
    assert_eq!(answer(&mut s, &reply), reply.len());
    let r = to_client(&mut s);
    assert_eq!(
        fields(&r[1].1),
        vec![Some(b"1".to_vec()), Some(b"***".to_vec())]
    );
    // The snapshot itself is not copied by a lazy lookup's extension: it still says two.
    assert!(matches!(
        before.lookup(CUSTOMERS),
        pgate::masks::catalog::Lookup::Masked(r) if r.natts == 2
    ));
}

#[test]
fn a_lookup_that_still_does_not_show_the_column_ends_the_session() {
    let mut s = masked();
    let before = without_ssn(&mut s);
    send(&mut s, &query("select ssn from customers"));
    let mut reply = result(&[(CUSTOMERS, 3, 25)], &[vec![Some(b"123-45-6789")]]);
    reply.extend(msg(b'C', &cstr("SELECT 1")));
    reply.extend(msg(b'Z', b"I"));
    assert_eq!(answer(&mut s, &reply), 0);
    assert_eq!(lookups(&mut s), 1);
    // The column was added in the session's own open transaction: other sessions (pgate's
    // lookup) do not see it yet.
    looked_up_again(&mut s, &before, 2);
    answer(&mut s, &reply);
    let r = to_client(&mut s);
    assert_eq!(tags(&r), "E", "{r:?}");
    assert!(!String::from_utf8_lossy(&r[0].1).contains("123-45"));
    assert!(s.session.is_closed());
}
