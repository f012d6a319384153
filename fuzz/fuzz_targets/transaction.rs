//! Homeserver transaction bodies: parsing and reading each event's message
//! content must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = passerelle::fuzzing::transaction(data);
});
