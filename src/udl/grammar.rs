//! The UDL grammar (`tree-sitter-objectscript`), with its external scanner's state stored
//! compactly.
//!
//! Tree-sitter keeps a copy of the external scanner's serialized state in every token the
//! external scanner produces (most whitespace, line ends and command boundaries of
//! ObjectScript code). The ObjectScript scanner serializes its whole state struct — about
//! 530 bytes, mostly empty marker buffers — so every such token costs a 530-byte allocation:
//! a class with method code took ~110× its size in memory (an exported thread class of 22 MB
//! peaked at 2.4 GB). Here the grammar's language table is copied once and its
//! `serialize`/`deserialize` entries wrapped: the scanner's bytes are run-length encoded
//! (runs of zero bytes become a count), which fits most states into the 24 bytes tree-sitter
//! stores inline. The encoding is exact and one-to-one, so the scanner sees the very bytes it
//! wrote and tree-sitter's state comparisons give the same answers: the trees are identical.
//!
//! The copy needs the layout of the language table (tree-sitter ABI 15, checked with the
//! table's name); a grammar built for another ABI is used as it is.

use std::ffi::{c_char, c_uint, c_void, CStr};
use std::sync::OnceLock;
use tree_sitter::Language;
use tree_sitter_language::LanguageFn;

/// `TREE_SITTER_SERIALIZATION_BUFFER_SIZE`: the most a scanner may write.
const BUFFER: usize = 1024;

type Serialize = unsafe extern "C" fn(*mut c_void, *mut c_char) -> c_uint;
type Deserialize = unsafe extern "C" fn(*mut c_void, *const c_char, c_uint);

/// The `external_scanner` part of `TSLanguage` (tree_sitter/parser.h, ABI 15).
#[repr(C)]
#[derive(Clone, Copy)]
struct ExternalScanner {
    states: *const bool,
    symbol_map: *const u16,
    create: *const c_void,
    destroy: *const c_void,
    scan: *const c_void,
    serialize: Option<Serialize>,
    deserialize: Option<Deserialize>,
}

/// `TSLanguage` of tree_sitter/parser.h, ABI 15 (288 bytes on 64-bit targets).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawLanguage {
    abi_version: u32,
    symbol_count: u32,
    alias_count: u32,
    token_count: u32,
    external_token_count: u32,
    state_count: u32,
    large_state_count: u32,
    production_id_count: u32,
    field_count: u32,
    max_alias_sequence_length: u16,
    tables: [*const c_void; 13],
    lex_fn: *const c_void,
    keyword_lex_fn: *const c_void,
    keyword_capture_token: u16,
    external_scanner: ExternalScanner,
    primary_state_ids: *const c_void,
    name: *const c_char,
    reserved_words: *const c_void,
    max_reserved_word_set_size: u16,
    supertype_count: u32,
    supertype_symbols: *const c_void,
    supertype_map_slices: *const c_void,
    supertype_map_entries: *const c_void,
    metadata: [u8; 3],
}

/// The grammar's own functions, called by the wrappers.
struct Original {
    serialize: Serialize,
    deserialize: Deserialize,
}

static ORIGINAL: OnceLock<Option<Original>> = OnceLock::new();
/// The address of the patched copy (leaked: languages live as long as the program).
static PATCHED: OnceLock<Option<usize>> = OnceLock::new();

/// The UDL language, with compact scanner states where the table layout is the known one.
pub(crate) fn language() -> Language {
    /// The patched copy's address, for tree-sitter's "language function".
    unsafe extern "C" fn table() -> *const () {
        PATCHED.get().copied().flatten().unwrap_or(0) as *const ()
    }
    if patched().is_some() {
        // SAFETY: `table` returns a leaked, never-mutated copy of the grammar's language
        // table whose layout `patched` checked.
        Language::new(unsafe { LanguageFn::from_raw(table) })
    } else {
        tree_sitter_objectscript::LANGUAGE_OBJECTSCRIPT_UDL.into()
    }
}

fn patched() -> Option<usize> {
    *PATCHED.get_or_init(|| {
        let raw = unsafe { tree_sitter_objectscript::LANGUAGE_OBJECTSCRIPT_UDL.into_raw()() }
            as *const RawLanguage;
        if raw.is_null() {
            return None;
        }
        // SAFETY: the grammar's table is a static `TSLanguage`; every ABI-15 table is at least
        // as large as `RawLanguage`, and only an ABI-15 table named objectscript_udl is used.
        let table = unsafe { *raw };
        if table.abi_version != 15
            || table.name.is_null()
            || unsafe { CStr::from_ptr(table.name) }.to_bytes() != b"objectscript_udl"
        {
            return None;
        }
        let (Some(serialize), Some(deserialize)) = (
            table.external_scanner.serialize,
            table.external_scanner.deserialize,
        ) else {
            return None;
        };
        ORIGINAL.get_or_init(|| {
            Some(Original {
                serialize,
                deserialize,
            })
        });
        let mut copy = table;
        copy.external_scanner.serialize = Some(compact_serialize);
        copy.external_scanner.deserialize = Some(compact_deserialize);
        Some(Box::leak(Box::new(copy)) as *const RawLanguage as usize)
    })
}

fn original() -> &'static Original {
    ORIGINAL
        .get()
        .and_then(Option::as_ref)
        .expect("the wrappers are installed only after the originals are stored")
}

unsafe extern "C" fn compact_serialize(payload: *mut c_void, out: *mut c_char) -> c_uint {
    let mut raw = [0u8; BUFFER];
    // SAFETY: the grammar's serialize writes at most BUFFER bytes.
    let n = unsafe { (original().serialize)(payload, raw.as_mut_ptr().cast()) } as usize;
    let encoded = encode(&raw[..n.min(BUFFER)]);
    // A state of n bytes encodes in at most n + 2 * (n / 255 + 2) bytes; tree-sitter's
    // buffer holds BUFFER bytes, and the grammar's state is about half of that.
    let len = encoded.len().min(BUFFER);
    // SAFETY: `out` is tree-sitter's BUFFER-byte serialization buffer.
    unsafe { std::ptr::copy_nonoverlapping(encoded.as_ptr(), out.cast::<u8>(), len) };
    len as c_uint
}

unsafe extern "C" fn compact_deserialize(payload: *mut c_void, data: *const c_char, len: c_uint) {
    if len == 0 || data.is_null() {
        // Tree-sitter's "no state yet": passed to the grammar unchanged.
        unsafe { (original().deserialize)(payload, data, len) };
        return;
    }
    // SAFETY: tree-sitter passes `len` bytes it stored from `compact_serialize`.
    let encoded = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
    let raw = decode(encoded);
    unsafe { (original().deserialize)(payload, raw.as_ptr().cast(), raw.len() as c_uint) };
}

/// Runs: a count of zero bytes (0–255), a count of literal bytes (0–255), the literal bytes;
/// repeated until the input is used up. One input has exactly one encoding.
fn encode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    let mut i = 0;
    while i < raw.len() {
        let zeros = raw[i..].iter().take(255).take_while(|&&b| b == 0).count();
        out.push(zeros as u8);
        i += zeros;
        let lits = raw[i..].iter().take(255).take_while(|&&b| b != 0).count();
        out.push(lits as u8);
        out.extend_from_slice(&raw[i..i + lits]);
        i += lits;
    }
    out
}

/// The inverse of [`encode`] (a malformed or over-long input stops at BUFFER bytes).
fn decode(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUFFER);
    let mut it = encoded.iter().copied();
    while let Some(zeros) = it.next() {
        out.resize((out.len() + zeros as usize).min(BUFFER), 0);
        let lits = it.next().unwrap_or(0) as usize;
        for _ in 0..lits {
            let Some(b) = it.next() else { break };
            if out.len() < BUFFER {
                out.push(b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_layout_is_the_one_the_header_describes() {
        assert_eq!(std::mem::size_of::<RawLanguage>(), 288);
        assert!(patched().is_some(), "the bundled grammar is ABI 15");
    }

    #[test]
    fn encoding_is_exact_and_small_for_sparse_states() {
        let mut state = vec![0u8; 530];
        state[0] = 1;
        state[128] = 1;
        state[529] = 7;
        let e = encode(&state);
        assert!(e.len() <= 24, "{} bytes", e.len());
        assert_eq!(decode(&e), state);
        for raw in [
            vec![],
            vec![0],
            vec![5],
            vec![0; 600],
            vec![9; 600],
            (0..=255u8).cycle().take(1000).collect::<Vec<_>>(),
        ] {
            assert_eq!(decode(&encode(&raw)), raw);
        }
        // One-to-one: different states never encode alike.
        assert_ne!(encode(&[0, 0]), encode(&[0]));
        assert_ne!(encode(&[1, 0]), encode(&[1]));
    }

    #[test]
    fn trees_are_identical_with_and_without_the_compact_state() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/generated/ex07_scope_compensation/Demo.Gen.Ex07.Thread1.cls"
        ))
        .expect("fixture");
        let sexp = |lang: Language| {
            let mut p = tree_sitter::Parser::new();
            p.set_language(&lang).expect("language");
            p.parse(&text, None).expect("tree").root_node().to_sexp()
        };
        let plain = sexp(tree_sitter_objectscript::LANGUAGE_OBJECTSCRIPT_UDL.into());
        assert!(plain.contains("method"), "{plain:.200}");
        assert_eq!(sexp(language()), plain);
    }
}
