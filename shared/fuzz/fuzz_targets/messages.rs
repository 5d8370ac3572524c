//! Log messages, one per line of the input: finding the JSON, classifying it into the contract's
//! families, normalizing, assembling turns by speech id, scrubbing personal data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voicelake_shared::envelope::LogBatch;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let batch = LogBatch::of_messages("/ecs/voice-agent", "fuzz", NOW - 1000, text.lines());
    check(&voicelake_shared::process_batch(&batch, &voicelake_shared::Config::default(), NOW));
});
