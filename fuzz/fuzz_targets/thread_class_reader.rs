//! The reader of class files exported from IRIS (`verify-numbering`'s thread classes).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bplmigrate::states::import::parse_generated("fuzz.cls", text);
    }
});
