//! The `awslogs.data` string: base64, gzip, the batch JSON and every message in it.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&voicelake_shared::process_payload(&text, &voicelake_shared::Config::default(), NOW));
});
