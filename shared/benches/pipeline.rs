//! The pure path of one invocation: payload → rows + datums + Parquet bytes, on a generated payload
//! of about 1 MB decompressed (CloudWatch's largest batches).
//!
//! Baseline, measured in the same run: inflating the payload and parsing each message into a
//! `serde_json::Value`, the least any JSON log handler does. Figures are quoted as a ratio to it.
//! A second group compares the two ways rows become Arrow arrays: decoding their JSON, and the
//! column builders the lake uses.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voicelake_shared::envelope::{self, LogBatch};
use voicelake_shared::{Config, lake, metrics};
use voicelake_synth::{self as synth, SynthOptions};

fn payload(bytes: usize) -> (String, usize) {
    let batch = synth::batch_of_size(bytes, 7);
    (envelope::encode(&batch), batch.log_events.len())
}

fn pure_path(data: &str, config: &Config, now: i64) -> usize {
    let out = voicelake_shared::process_payload(data, config, now);
    let datums = metrics::split_requests(metrics::datums_for(&out, config, now));
    let files = [
        lake::encode_partitioned(&out.turns).unwrap(),
        lake::encode_partitioned(&out.sessions).unwrap(),
        lake::encode_partitioned(&out.rejects).unwrap(),
    ];
    datums.len() + files.iter().flatten().map(|f| f.bytes.len()).sum::<usize>()
}

fn baseline(data: &str) -> usize {
    let batch: LogBatch = serde_json::from_slice(&envelope::inflate(data).unwrap()).unwrap();
    batch
        .log_events
        .iter()
        .filter_map(|e| e.message.find('{').and_then(|i| serde_json::from_str::<serde_json::Value>(&e.message[i..]).ok()))
        .count()
}

fn bench(c: &mut Criterion) {
    let (data, events) = payload(1 << 20);
    let config = Config::default();
    let now = SynthOptions::default().start_ms + 3_600_000;
    let mut group = c.benchmark_group("payload_1mb");
    group.throughput(Throughput::Elements(events as u64));
    group.sample_size(30);
    group.bench_function("baseline_inflate_and_parse_values", |b| b.iter(|| baseline(std::hint::black_box(&data))));
    group.bench_function("pipeline_rows_datums_parquet", |b| b.iter(|| pure_path(std::hint::black_box(&data), &config, now)));
    group.finish();

    // Where the rows become Arrow arrays: the column builders against decoding the rows' JSON.
    let out = voicelake_shared::process_payload(&data, &config, now);
    let mut arrays = c.benchmark_group("turns_to_arrow");
    arrays.throughput(Throughput::Elements(out.turns.len() as u64));
    arrays.sample_size(30);
    arrays.bench_function("json_decoding", |b| b.iter(|| lake::record_batch_from_json(std::hint::black_box(&out.turns)).unwrap()));
    arrays.bench_function("column_builders", |b| b.iter(|| lake::record_batch(std::hint::black_box(&out.turns)).unwrap()));
    arrays.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
