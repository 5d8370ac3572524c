//! The decompressed batch: the subscription JSON (any bytes, UTF-8 or not) and its messages.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = voicelake_shared::envelope::parse_batch(data.to_vec()) {
        check(&voicelake_shared::process_batch(&decoded.batch, &voicelake_shared::Config::default(), NOW));
    }
});
