//! PostgreSQL stand-ins for the IRIS-only pieces the `postgres` dialect calls.
//!
//! The test schema runs [`POSTGRES_TEST_SUPPORT_DDL`] (one statement per element, in order)
//! before it loads IRIS-shaped tables. It defines:
//! - `bplm_listbuild(VARIADIC text[]) RETURNS bytea` — `$LISTBUILD`: per element
//!   `<len+2 as 1 byte><0x01><bytes>` (8-bit strings up to 253 bytes; longer raises);
//! - `bplm_listsame(bytea, bytea) RETURNS integer` — `$LISTSAME`: 1 when equal, NULL read as
//!   the empty list;
//! - `"Ens"."Job"` (`"Job"`, `"ConfigName"`, `"State"`), the rows the stand-in returns, and
//!   `"Ens"."Job_Enumerate"()` — `Ens.Job_Enumerate()`: a set-returning function over it;
//! - `"Ens_Config"."Item"` (`"Production"`, `"Name"`, `"ClassName"`, `"PoolSize"`,
//!   `"Enabled"`) if it does not exist yet.
//!
//! All are `CREATE … IF NOT EXISTS` / `CREATE OR REPLACE`, so running it twice is harmless.

pub const POSTGRES_TEST_SUPPORT_DDL: &[&str] = &[
    r#"CREATE OR REPLACE FUNCTION bplm_listbuild(VARIADIC elems text[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
DECLARE
    result bytea := ''::bytea;
    e text;
    b bytea;
BEGIN
    FOREACH e IN ARRAY elems LOOP
        b := convert_to(e, 'LATIN1');
        IF octet_length(b) > 253 THEN
            RAISE EXCEPTION 'bplm_listbuild: element longer than 253 bytes';
        END IF;
        result := result || set_byte(decode('00', 'hex'), 0, octet_length(b) + 2) || decode('01', 'hex') || b;
    END LOOP;
    RETURN result;
END
$fn$"#,
    r#"CREATE OR REPLACE FUNCTION bplm_listsame(a bytea, b bytea) RETURNS integer
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE WHEN coalesce(a, ''::bytea) = coalesce(b, ''::bytea) THEN 1 ELSE 0 END
$fn$"#,
    r#"CREATE SCHEMA IF NOT EXISTS "Ens""#,
    r#"CREATE TABLE IF NOT EXISTS "Ens"."Job" ("Job" text, "ConfigName" text, "State" text)"#,
    r#"CREATE OR REPLACE FUNCTION "Ens"."Job_Enumerate"() RETURNS TABLE ("Job" text, "ConfigName" text, "State" text)
LANGUAGE sql STABLE AS $fn$
    SELECT j."Job", j."ConfigName", j."State" FROM "Ens"."Job" j
$fn$"#,
    r#"CREATE SCHEMA IF NOT EXISTS "Ens_Config""#,
    r#"CREATE TABLE IF NOT EXISTS "Ens_Config"."Item" ("Production" text, "Name" text, "ClassName" text, "PoolSize" integer, "Enabled" integer)"#,
];

/// The `$List` bytes `$LISTBUILD(elems…)` (and `bplm_listbuild`) produce for short 8-bit
/// strings; an empty stack is NULL, not an empty list. Panics on elements over 253 bytes
/// (state names are a few bytes).
pub fn list_build(elems: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elems {
        let b = e.as_bytes();
        assert!(b.len() <= 253, "list element too long for the short form");
        out.push((b.len() + 2) as u8);
        out.push(1);
        out.extend_from_slice(b);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_encoding_matches_the_spec() {
        assert_eq!(
            super::list_build(&["S5", "S9"]),
            b"\x04\x01S5\x04\x01S9".to_vec()
        );
        assert_eq!(super::list_build(&[]), Vec::<u8>::new());
    }
}
