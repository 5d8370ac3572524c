use std::io::Write;

use super::*;

fn units(path: &Path) -> Vec<String> {
    read(path, 7)
        .unwrap()
        .into_iter()
        .map(|u| match u {
            InputUnit::Payload { data, .. } => format!("payload {}", data.len()),
            InputUnit::Decoded { json, source } => format!("decoded {} {source}", json.len()),
            InputUnit::Batch(b) => {
                format!("{} {} {:?}", b.log_stream, b.log_events.len(), b.log_events.iter().map(|e| &e.id).collect::<Vec<_>>())
            }
            InputUnit::Rejected { source, reason, .. } => format!("rejected {source} {}", reason.as_str()),
        })
        .collect()
}

#[test]
fn every_form_is_read_and_gzip_is_the_same_as_plain() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "{\"awslogs\": {\"data\": \"H4sIAAAA\"}}\nplain log line\n\n{\"events\": [{\"logStreamName\": \"s\", \"timestamp\": 5, \"message\": \"m\", \"eventId\": \"e1\"}]}\nlast line\n";
    let plain = dir.path().join("in.jsonl");
    std::fs::write(&plain, lines).unwrap();
    let gz = dir.path().join("in.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(lines.as_bytes()).unwrap();
    enc.finish().unwrap();
    let want = ["payload 8", "s 1 [\"e1\"]", "replay 2 [\"in.jsonl:2\", \"in.jsonl:5\"]"];
    assert_eq!(units(&plain), want);
    assert_eq!(units(&gz), want, "a .gz input names its events as the plain one does");

    // One JSON document over several lines: `aws logs` output as the CLI prints it.
    let doc = dir.path().join("events.json");
    std::fs::write(&doc, "{\n  \"events\": [\n    {\"logStreamName\": \"a\", \"timestamp\": 1, \"message\": \"x\"}\n  ]\n}\n").unwrap();
    assert_eq!(units(&doc), ["a 1 [\"events.json:0\"]"]);
}

/// `aws logs filter-log-events` output of many events, as the CLI prints it over many lines.
fn cli_document(events: usize) -> String {
    let events: Vec<String> = (0..events)
        .map(|i| format!("        {{\n            \"logStreamName\": \"s{}\",\n            \"timestamp\": {i},\n            \"message\": \"m{i}\"\n        }}", i / 700))
        .collect();
    format!("{{\n    \"events\": [\n{}\n    ],\n    \"searchedLogStreams\": []\n}}\n", events.join(",\n"))
}

#[test]
fn a_multi_line_document_is_handed_on_batch_by_batch_as_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("day.json");
    std::fs::write(&doc, cli_document(1200)).unwrap();
    let got: Vec<String> = units(&doc).iter().map(|u| u.split(" [").next().unwrap().to_owned()).collect();
    assert_eq!(got, ["s0 500", "s1 500", "s0 200"], "batches per stream, at most 500 events each, the rest at the end");

    // The first batch is handed on before the document has been read to its end; a document
    // that breaks off costs only what is left of it, a reject that says where it broke.
    let broken = dir.path().join("broken.json");
    let text = cli_document(1200);
    std::fs::write(&broken, &text[..text.len() / 2]).unwrap();
    let got = units(&broken);
    assert_eq!(got.len(), 3, "{got:?}");
    let shape: Vec<&str> = got.iter().map(|u| u.split(" [").next().unwrap()).collect();
    assert_eq!(shape, ["s0 500", "s0 102", "rejected broken.json bad_payload_json"]);
    // A unit that cannot be used (the lake cannot be written) fails as itself.
    let error = read_each(&doc, 7, |_| anyhow::bail!("disk full")).unwrap_err();
    assert_eq!(format!("{error:#}"), "disk full");

    // A pretty-printed subscription event is one payload; a document of neither kind is lines.
    let event = dir.path().join("event.json");
    std::fs::write(&event, "{\n  \"awslogs\": {\n    \"data\": \"H4sIAAAA\"\n  }\n}\n").unwrap();
    assert_eq!(units(&event), ["payload 8"]);
    let other = dir.path().join("other.json");
    std::fs::write(&other, "{\n  \"level\": \"info\"\n}\n").unwrap();
    assert_eq!(units(&other), ["replay 3 [\"other.json:1\", \"other.json:2\", \"other.json:3\"]"]);
}

#[test]
fn archives_of_decoded_payloads_are_read_a_document_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let doc = |n: usize| {
        format!(
            r#"{{"messageType": "DATA_MESSAGE", "logGroup": "/g", "logStream": "s", "logEvents": [{{"id": "{n}", "timestamp": 1, "message": "x {{\"a\": \"}}\"}}"}}]}}"#
        )
    };
    // What Firehose leaves in S3: gzip members back to back, each a payload without a newline.
    let path = dir.path().join("archive");
    let mut file = std::fs::File::create(&path).unwrap();
    for n in 0..3 {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(doc(n).as_bytes()).unwrap();
        file.write_all(&enc.finish().unwrap()).unwrap();
    }
    drop(file);
    let len = doc(0).len();
    assert_eq!(units(&path), (1..=3).map(|n| format!("decoded {len} archive document {n}")).collect::<Vec<_>>());
    // One per line, and pretty-printed, the same.
    let lines = dir.path().join("payloads.jsonl");
    std::fs::write(&lines, format!("{}\n{}\n", doc(0), doc(1))).unwrap();
    assert_eq!(units(&lines).len(), 2);
    let pretty = dir.path().join("payload.json");
    let value: serde_json::Value = serde_json::from_str(&doc(0)).unwrap();
    std::fs::write(&pretty, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    assert_eq!(units(&pretty).len(), 1);
}

#[test]
fn damaged_bytes_cost_at_most_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bytes.log");
    let mut bytes = "\u{feff}first line\r\n".as_bytes().to_vec();
    bytes.extend_from_slice(b"r\xe9server \x00 here\n");
    bytes.extend_from_slice(b"third\n");
    std::fs::write(&path, &bytes).unwrap();
    let mut units = Vec::new();
    let repaired = read_each(&path, 7, |u| {
        units.push(u);
        Ok(())
    })
    .unwrap();
    let [InputUnit::Batch(batch)] = units.as_slice() else { panic!("one batch") };
    let messages: Vec<&str> = batch.log_events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["first line", "r\u{fffd}server \u{fffd} here", "third"]);
    assert_eq!(repaired, 2, "the Latin-1 byte and the NUL");
}

#[test]
fn a_line_longer_than_any_log_event_is_rejected_without_being_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.log");
    let mut text = format!("{{\"_event_type\": \"voice_metrics\", \"x\": \"{}\"}}\n", "a".repeat(300 * 1024));
    text.push_str("next line\n");
    std::fs::write(&path, text).unwrap();
    assert_eq!(units(&path), ["rejected long.log:1 line_too_long", "replay 1 [\"long.log:2\"]"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Whatever a file holds, reading it ends: every byte becomes a unit, a reject or a skipped
    /// blank, and nothing but the callback can fail the read. Inputs start like each form.
    #[test]
    fn arbitrary_bytes_never_abort_a_replay(
        start in proptest::sample::select(vec!["", "{\"messageType\": \"DATA_MESSAGE\", ", "{\n  \"events\": [", "{\"awslogs\": {\"data\": \"", "\u{feff}", "2025-10-16T09:12:02Z stdout P "]),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        gzip in proptest::prelude::any::<bool>(),
        cut in 0usize..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        let mut bytes = start.as_bytes().to_vec();
        bytes.extend(body);
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            bytes = enc.finish().unwrap();
            // Now and then a compressed file that breaks off.
            if cut < 30 {
                bytes.truncate(bytes.len() * cut / 30);
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let config = voicelake_shared::Config::default();
        let read = read_each(&path, 7, |unit| {
            // And every unit goes through the pipeline without a panic, its counts balanced.
            let out = match unit {
                InputUnit::Payload { data, .. } => voicelake_shared::process_payload(&data, &config, 7),
                InputUnit::Decoded { json, .. } => voicelake_shared::process_decoded(json, &config, 7),
                InputUnit::Batch(b) => voicelake_shared::process_batch(&b, &config, 7),
                InputUnit::Rejected { source, raw, reason, detail } => voicelake_shared::reject_input(Some(&source), &raw, reason, detail, &config, 7),
            };
            assert!(out.stats.is_balanced(), "{:?}", out.stats);
            Ok(())
        });
        proptest::prop_assert!(read.is_ok(), "{:?}", read.err());
    }
}
