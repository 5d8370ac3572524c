//! The lake's encodings agree with its schemas: Arrow batches, Parquet files and Firehose records.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMillisecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use voicelake_shared::lake::{self, LakeRow, PARTITION_KEYS, Table};
use voicelake_shared::{BatchOutput, Config, process_batch};
use voicelake_synth::{self as synth, SynthOptions};

fn traffic() -> BatchOutput {
    let config = Config::default();
    let mut all = BatchOutput::default();
    for b in synth::generate(&SynthOptions { calls: 40, ..SynthOptions::default() }) {
        let out = process_batch(&b, &config, SynthOptions::default().start_ms);
        all.turns.extend(out.turns);
        all.sessions.extend(out.sessions);
        all.rejects.extend(out.rejects);
    }
    all
}

fn read_parquet(bytes: &[u8]) -> arrow::array::RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes)).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 1, "one row group per file");
    let batches: Vec<_> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn round_trip<R: LakeRow>(rows: &[R]) {
    let files = lake::encode_partitioned(rows).unwrap();
    let hours: std::collections::BTreeSet<_> = rows.iter().map(|r| voicelake_shared::timefmt::Partition::of(r.event_time())).collect();
    assert_eq!(files.len(), hours.len(), "{:?}: one file per hour", R::TABLE);
    assert_eq!(files.iter().map(|f| f.rows).sum::<usize>(), rows.len());
    for file in &files {
        let back = read_parquet(&file.bytes);
        let mut partition_rows: Vec<&R> =
            rows.iter().filter(|r| voicelake_shared::timefmt::Partition::of(r.event_time()) == file.partition).collect();
        // A file holds its rows in event-time order.
        partition_rows.sort_by(|a, b| (a.event_time(), a.event_id()).cmp(&(b.event_time(), b.event_id())));
        let expected = lake::record_batch(&partition_rows).unwrap();
        assert_eq!(back.schema().fields(), expected.schema().fields());
        assert_eq!(back, expected, "{:?} {:?}", R::TABLE, file.partition);
    }
}

#[test]
fn parquet_files_read_back_as_the_rows_they_hold() {
    let all = traffic();
    assert!(!all.rejects.is_empty(), "generated traffic holds malformed lines");
    assert!(lake::encode_partitioned(&all.turns).unwrap().len() > 1, "the traffic spans more than one hour");
    round_trip(&all.turns);
    round_trip(&all.sessions);
    round_trip(&all.rejects);
}

#[test]
fn values_survive_with_their_types() {
    let all = traffic();
    let batch = lake::record_batch(&all.turns).unwrap();
    let latency = batch.column_by_name("total_latency_ms").unwrap().as_primitive::<Float64Type>();
    for (i, row) in all.turns.iter().enumerate() {
        assert_eq!(latency.is_valid(i), row.total_latency_ms.is_some());
        if let Some(v) = row.total_latency_ms {
            assert_eq!(latency.value(i), v);
        }
    }
    let times = batch.column_by_name("event_time").unwrap().as_primitive::<TimestampMillisecondType>();
    assert_eq!(times.value(0), all.turns[0].event_time);
    let sessions = lake::record_batch(&all.sessions).unwrap();
    let signals = sessions.column_by_name("discovered_signals").unwrap().as_map();
    assert!(signals.len() == all.sessions.len() && signals.entries().len() > 0);
}

#[test]
fn firehose_records_are_the_columns_plus_the_partition_keys() {
    let all = traffic();
    fn keys<R: LakeRow>(row: &R) -> Vec<String> {
        let record = lake::firehose_record(row);
        assert_eq!(record.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&record).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    }
    for (table, keys) in
        [(Table::Turns, keys(&all.turns[0])), (Table::Sessions, keys(&all.sessions[0])), (Table::Rejects, keys(&all.rejects[0]))]
    {
        let mut expected: Vec<String> = table.schema().fields().iter().map(|f| f.name().clone()).collect();
        expected.extend(PARTITION_KEYS.iter().map(|k| k.to_string()));
        let mut keys = keys;
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected, "{table:?}");
    }
    let record: serde_json::Value = serde_json::from_slice(&lake::firehose_record(&all.turns[0])).unwrap();
    let p = voicelake_shared::timefmt::Partition::of(all.turns[0].event_time);
    assert_eq!((record["dt"].as_str(), record["hour"].as_str()), (Some(p.dt.as_str()), Some(p.hour.as_str())));
    assert!(record["event_time"].is_i64(), "epoch milliseconds: Firehose's HiveJsonSerDe reads them with TimestampFormats [millis]");
}

#[test]
fn glue_types_of_the_nested_columns() {
    let sessions: std::collections::BTreeMap<String, String> = lake::glue_columns(Table::Sessions).into_iter().collect();
    assert_eq!(sessions["tool_calls"], "array<struct<name:string,success:boolean,duration_ms:double,error:string>>");
    assert_eq!(sessions["discovered_signals"], "map<string,string>");
    assert_eq!(sessions["event_time"], "timestamp");
    let turns: std::collections::BTreeMap<String, String> = lake::glue_columns(Table::Turns).into_iter().collect();
    assert_eq!(turns["value_issues"], "array<string>");
    assert_eq!(turns["component_events"], "int");
    assert!(!turns.contains_key("dt") && !turns.contains_key("hour"), "partition keys are not columns");
}

#[test]
fn empty_tables_encode() {
    let empty: Vec<voicelake_shared::rows::RejectRow> = vec![];
    assert_eq!(lake::record_batch(&empty).unwrap().num_rows(), 0);
    assert!(lake::encode_partitioned(&empty).unwrap().is_empty());
}

/// The column builders give exactly the batch that decoding the rows' JSON against the schema in
/// strict mode gives, on traffic with every family, nulls, nested lists and rejects.
#[test]
fn built_columns_equal_the_strict_json_decoding() {
    let all = traffic();
    assert_eq!(lake::record_batch(&all.turns).unwrap(), lake::record_batch_from_json(&all.turns).unwrap());
    assert_eq!(lake::record_batch(&all.rejects).unwrap(), lake::record_batch_from_json(&all.rejects).unwrap());
    assert_eq!(lake::record_batch(&all.sessions).unwrap(), lake::record_batch_from_json(&all.sessions).unwrap());
    let none: &[voicelake_shared::rows::TurnRow] = &[];
    assert_eq!(lake::record_batch(none).unwrap(), lake::record_batch_from_json(none).unwrap());
}
