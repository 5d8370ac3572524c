//! The lake tables: one Arrow schema each, Parquet encoding, and the JSON records Firehose converts.
//!
//! The schemas here are the single definition of the lake: rows are decoded against them in strict
//! mode (a row field without a column is an error), the Glue tables in `template.yaml` are checked
//! against [`glue_columns`], and Firehose records carry the same fields plus the partition keys.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::rows::{ErrorRow, LatencySource, RejectRow, SessionRow, TurnRow};
use crate::timefmt::Partition;

/// Partition keys of every table, in order. They are in the S3 path, not in the Parquet files.
pub const PARTITION_KEYS: [&str; 2] = ["dt", "hour"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Turns,
    Sessions,
    Rejects,
    Errors,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Turns, Table::Sessions, Table::Rejects, Table::Errors];

    /// The table name, also its folder in the bucket.
    pub fn name(self) -> &'static str {
        match self {
            Table::Turns => "turns",
            Table::Sessions => "sessions",
            Table::Rejects => "rejects",
            Table::Errors => "errors",
        }
    }

    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Turns => TURNS.clone(),
            Table::Sessions => SESSIONS.clone(),
            Table::Rejects => REJECTS.clone(),
            Table::Errors => ERRORS.clone(),
        }
    }
}

/// A row of a lake table.
pub trait LakeRow: Serialize {
    const TABLE: Table;
    fn event_time(&self) -> i64;
    /// The CloudWatch event id the row came from, where it has one.
    fn event_id(&self) -> &str;

    /// The rows as the table's columns, built directly from the fields. `None` where a table is
    /// built from its rows' JSON instead (the nested columns of `sessions`).
    fn columns(_rows: &[&Self]) -> Option<Vec<ArrayRef>>
    where
        Self: Sized,
    {
        None
    }
}

/// Column builders over borrowed rows: one call per column, in the schema's order.
struct Columns<'r, R>(&'r [&'r R]);

impl<R> Columns<'_, R> {
    fn text(&self, get: impl Fn(&R) -> Option<&str>) -> ArrayRef {
        Arc::new(StringArray::from_iter(self.0.iter().map(|r| get(r))))
    }
    fn float(&self, get: impl Fn(&R) -> Option<f64>) -> ArrayRef {
        Arc::new(Float64Array::from_iter(self.0.iter().map(|r| get(r))))
    }
    fn int(&self, get: impl Fn(&R) -> Option<i64>) -> ArrayRef {
        Arc::new(Int64Array::from_iter(self.0.iter().map(|r| get(r))))
    }
    fn flag(&self, get: impl Fn(&R) -> Option<bool>) -> ArrayRef {
        Arc::new(BooleanArray::from_iter(self.0.iter().map(|r| get(r))))
    }
    fn time(&self, get: impl Fn(&R) -> i64) -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from_iter_values(self.0.iter().map(|r| get(r))).with_timezone("+00:00"))
    }
    fn texts(&self, get: impl Fn(&R) -> &[String]) -> ArrayRef {
        let mut list = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new("element", DataType::Utf8, false)));
        for r in self.0 {
            for item in get(r) {
                list.values().append_value(item);
            }
            list.append(true);
        }
        Arc::new(list.finish())
    }
}

impl LakeRow for TurnRow {
    const TABLE: Table = Table::Turns;
    fn event_time(&self) -> i64 {
        self.event_time
    }
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn columns(rows: &[&TurnRow]) -> Option<Vec<ArrayRef>> {
        let c = Columns(rows);
        Some(vec![
            c.text(|r| Some(&r.event_id)),
            c.time(|r| r.event_time),
            c.text(|r| r.session_id.as_deref()),
            c.text(|r| r.speech_id.as_deref()),
            c.text(|r| Some(&r.agent_name)),
            c.text(|r| r.agent_version.as_deref()),
            c.text(|r| r.tenant_id.as_deref()),
            c.text(|r| Some(&r.environment)),
            c.float(|r| r.total_latency_ms),
            c.text(|r| r.latency_source.map(LatencySource::as_str)),
            c.flag(|r| Some(r.is_complete)),
            c.flag(|r| r.over_target),
            c.flag(|r| r.interrupted),
            c.float(|r| r.eou_delay_ms),
            c.float(|r| r.transcription_delay_ms),
            c.float(|r| r.on_user_turn_completed_delay_ms),
            c.float(|r| r.llm_ttft_ms),
            c.float(|r| r.llm_duration_ms),
            c.int(|r| r.llm_calls),
            c.float(|r| r.llm_phase_ms),
            c.float(|r| r.tts_ttfb_ms),
            c.float(|r| r.tts_duration_ms),
            c.float(|r| r.tts_audio_duration_ms),
            c.float(|r| r.stt_duration_ms),
            c.float(|r| r.stt_audio_duration_ms),
            c.int(|r| r.prompt_tokens),
            c.int(|r| r.prompt_cached_tokens),
            c.int(|r| r.completion_tokens),
            c.int(|r| r.tts_characters),
            c.text(|r| r.llm_provider.as_deref()),
            c.text(|r| r.llm_model.as_deref()),
            c.text(|r| r.tts_provider.as_deref()),
            c.text(|r| r.tts_model.as_deref()),
            c.text(|r| r.stt_provider.as_deref()),
            c.text(|r| r.stt_model.as_deref()),
            c.text(|r| Some(r.source_format.as_str())),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.component_events))),
            c.texts(|r| &r.value_issues),
            c.text(|r| Some(&r.log_group)),
            c.text(|r| Some(&r.log_stream)),
        ])
    }
}

impl LakeRow for SessionRow {
    const TABLE: Table = Table::Sessions;
    fn event_time(&self) -> i64 {
        self.event_time
    }
    fn event_id(&self) -> &str {
        &self.event_id
    }
}

impl LakeRow for RejectRow {
    const TABLE: Table = Table::Rejects;
    fn event_time(&self) -> i64 {
        self.event_time
    }
    fn event_id(&self) -> &str {
        self.event_id.as_deref().unwrap_or("")
    }

    fn columns(rows: &[&RejectRow]) -> Option<Vec<ArrayRef>> {
        let c = Columns(rows);
        Some(vec![
            c.text(|r| r.event_id.as_deref()),
            c.time(|r| r.event_time),
            c.text(|r| Some(&r.reason)),
            c.text(|r| Some(&r.detail)),
            c.text(|r| Some(&r.stage)),
            c.text(|r| Some(&r.raw_message)),
            c.int(|r| Some(r.raw_bytes)),
            c.flag(|r| Some(r.raw_truncated)),
            c.text(|r| Some(&r.environment)),
            c.text(|r| r.log_group.as_deref()),
            c.text(|r| r.log_stream.as_deref()),
        ])
    }
}

impl LakeRow for ErrorRow {
    const TABLE: Table = Table::Errors;
    fn event_time(&self) -> i64 {
        self.event_time
    }
    fn event_id(&self) -> &str {
        &self.event_id
    }

    fn columns(rows: &[&ErrorRow]) -> Option<Vec<ArrayRef>> {
        let c = Columns(rows);
        Some(vec![
            c.text(|r| Some(&r.event_id)),
            c.time(|r| r.event_time),
            c.text(|r| r.session_id.as_deref()),
            c.text(|r| Some(&r.agent_name)),
            c.text(|r| r.agent_version.as_deref()),
            c.text(|r| r.tenant_id.as_deref()),
            c.text(|r| Some(&r.environment)),
            c.text(|r| Some(&r.kind)),
            c.text(|r| Some(r.source_format.as_str())),
            c.text(|r| Some(&r.provider)),
            c.text(|r| r.model.as_deref()),
            c.text(|r| r.label.as_deref()),
            c.text(|r| Some(&r.action)),
            c.text(|r| r.error_class.as_deref()),
            c.int(|r| r.status_code),
            c.flag(|r| r.recoverable),
            c.int(|r| r.attempt),
            c.float(|r| r.memory_used_percent),
            c.text(|r| Some(&r.message)),
            c.texts(|r| &r.value_issues),
            c.text(|r| Some(&r.log_group)),
            c.text(|r| Some(&r.log_stream)),
        ])
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
fn f64(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}
fn i64(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int64, nullable)
}
fn boolean(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Boolean, nullable)
}
fn event_time() -> Field {
    Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())), false)
}
fn list_of(name: &str, item: DataType, item_nullable: bool) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("element", item, item_nullable))), false)
}

static TURNS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        event_time(),
        utf8("session_id", true),
        utf8("speech_id", true),
        utf8("agent_name", false),
        utf8("agent_version", true),
        utf8("tenant_id", true),
        utf8("environment", false),
        f64("total_latency_ms"),
        utf8("latency_source", true),
        boolean("is_complete", false),
        boolean("over_target", true),
        boolean("interrupted", true),
        f64("eou_delay_ms"),
        f64("transcription_delay_ms"),
        f64("on_user_turn_completed_delay_ms"),
        f64("llm_ttft_ms"),
        f64("llm_duration_ms"),
        i64("llm_calls", true),
        f64("llm_phase_ms"),
        f64("tts_ttfb_ms"),
        f64("tts_duration_ms"),
        f64("tts_audio_duration_ms"),
        f64("stt_duration_ms"),
        f64("stt_audio_duration_ms"),
        i64("prompt_tokens", true),
        i64("prompt_cached_tokens", true),
        i64("completion_tokens", true),
        i64("tts_characters", true),
        utf8("llm_provider", true),
        utf8("llm_model", true),
        utf8("tts_provider", true),
        utf8("tts_model", true),
        utf8("stt_provider", true),
        utf8("stt_model", true),
        utf8("source_format", false),
        Field::new("component_events", DataType::Int32, false),
        list_of("value_issues", DataType::Utf8, false),
        utf8("log_group", false),
        utf8("log_stream", false),
    ]))
});

static SESSIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let tool_call = Fields::from(vec![utf8("name", false), boolean("success", true), f64("duration_ms"), utf8("error", true)]);
    let model_usage = Fields::from(vec![
        utf8("kind", false),
        utf8("provider", false),
        utf8("model", false),
        i64("input_tokens", true),
        i64("cached_input_tokens", true),
        i64("output_tokens", true),
        i64("characters", true),
        f64("audio_seconds"),
        f64("cost_usd"),
    ]);
    let signals = Field::new("entries", DataType::Struct(Fields::from(vec![utf8("key", false), utf8("value", true)])), false);
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        event_time(),
        utf8("session_id", false),
        utf8("agent_name", false),
        utf8("agent_version", true),
        utf8("tenant_id", true),
        utf8("environment", false),
        utf8("record_type", false),
        utf8("source_format", false),
        f64("duration_seconds"),
        utf8("outcome", true),
        boolean("call_setup_failed", true),
        utf8("setup_failure_reason", true),
        i64("turn_count", true),
        list_of("tool_calls", DataType::Struct(tool_call), false),
        i64("tool_call_count", false),
        i64("tool_failure_count", false),
        i64("tool_outcome_count", false),
        Field::new("discovered_signals", DataType::Map(Arc::new(signals), false), false),
        i64("llm_prompt_tokens", true),
        i64("llm_cached_tokens", true),
        i64("llm_completion_tokens", true),
        f64("stt_audio_seconds"),
        f64("tts_audio_seconds"),
        i64("tts_characters", true),
        list_of("model_usage", DataType::Struct(model_usage), false),
        f64("estimated_cost_usd"),
        f64("mos"),
        f64("jitter_ms"),
        f64("packet_loss_rate"),
        list_of("value_issues", DataType::Utf8, false),
        utf8("log_group", false),
        utf8("log_stream", false),
    ]))
});

static REJECTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("event_id", true),
        event_time(),
        utf8("reason", false),
        utf8("detail", false),
        utf8("stage", false),
        utf8("raw_message", false),
        i64("raw_bytes", false),
        boolean("raw_truncated", false),
        utf8("environment", false),
        utf8("log_group", true),
        utf8("log_stream", true),
    ]))
});

static ERRORS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        event_time(),
        utf8("session_id", true),
        utf8("agent_name", false),
        utf8("agent_version", true),
        utf8("tenant_id", true),
        utf8("environment", false),
        utf8("kind", false),
        utf8("source_format", false),
        utf8("provider", false),
        utf8("model", true),
        utf8("label", true),
        utf8("action", false),
        utf8("error_class", true),
        i64("status_code", true),
        boolean("recoverable", true),
        i64("attempt", true),
        f64("memory_used_percent"),
        utf8("message", false),
        list_of("value_issues", DataType::Utf8, false),
        utf8("log_group", false),
        utf8("log_stream", false),
    ]))
});

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{table} rows do not match the table schema: {source}")]
    Schema { table: &'static str, source: arrow::error::ArrowError },
    #[error("writing {table} Parquet failed: {source}")]
    Parquet { table: &'static str, source: parquet::errors::ParquetError },
}

/// Rows as an Arrow batch of their table: built column by column where the row type does it
/// ([`LakeRow::columns`]), else decoded from the rows' JSON.
pub fn record_batch<R: LakeRow>(rows: &[R]) -> Result<RecordBatch, LakeError> {
    let refs: Vec<&R> = rows.iter().collect();
    match R::columns(&refs) {
        Some(columns) => {
            RecordBatch::try_new(R::TABLE.schema(), columns).map_err(|source| LakeError::Schema { table: R::TABLE.name(), source })
        }
        None => record_batch_from_json(rows),
    }
}

/// Rows as an Arrow batch decoded from their JSON in strict mode: a field without its column is an
/// error. The reference the column builders are tested against.
pub fn record_batch_from_json<R: LakeRow>(rows: &[R]) -> Result<RecordBatch, LakeError> {
    let table = R::TABLE;
    let schema_err = |source| LakeError::Schema { table: table.name(), source };
    let mut decoder = arrow::json::ReaderBuilder::new(table.schema())
        .with_strict_mode(true)
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(schema_err)?;
    decoder.serialize(rows).map_err(schema_err)?;
    Ok(decoder.flush().map_err(schema_err)?.unwrap_or_else(|| RecordBatch::new_empty(table.schema())))
}

/// Parquet bytes of one batch: Snappy (as Firehose writes), one row group unless over a million rows.
pub fn to_parquet(table: Table, batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    let err = |source| LakeError::Parquet { table: table.name(), source };
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(concat!("voicelake ", env!("CARGO_PKG_VERSION")).to_owned())
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(err)?;
    writer.write(batch).map_err(err)?;
    writer.close().map_err(err)?;
    Ok(out)
}

/// A Parquet file of `table` with its columns and no rows: what a query reads of a table the lake
/// has no file of yet.
pub fn empty_parquet(table: Table) -> Result<Vec<u8>, LakeError> {
    to_parquet(table, &RecordBatch::new_empty(table.schema()))
}

/// One Parquet object of the lake.
#[derive(Debug, Clone)]
pub struct LakeFile {
    pub table: Table,
    pub partition: Partition,
    pub rows: usize,
    pub bytes: Vec<u8>,
}

impl LakeFile {
    /// The key below the lake root, the same layout Firehose writes: `turns/dt=…/hour=…/NAME.parquet`.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{}/{name}.parquet", self.table.name(), self.partition.path())
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Rows grouped by event-time partition, each group encoded as one Parquet file.
pub fn encode_partitioned<R: LakeRow>(rows: &[R]) -> Result<Vec<LakeFile>, LakeError> {
    // Grouped by the hour as a number: formatting a partition's strings for every row cost more
    // than encoding it. A partition is an hour of UTC, so the hour's start names it.
    let mut groups: BTreeMap<i64, Vec<&R>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.event_time().div_euclid(HOUR_MS)).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|(hour, mut rows)| {
            // In event-time order: a file's row groups then span narrow time ranges (their
            // statistics prune scans), and the same rows make the same file however they arrived.
            rows.sort_by(|a, b| (a.event_time(), a.event_id()).cmp(&(b.event_time(), b.event_id())));
            let partition = Partition::of(hour * HOUR_MS);
            let batch = record_batch(&rows)?;
            Ok(LakeFile { table: R::TABLE, partition, rows: rows.len(), bytes: to_parquet(R::TABLE, &batch)? })
        })
        .collect()
}

impl<R: LakeRow> LakeRow for &R {
    const TABLE: Table = R::TABLE;
    fn event_time(&self) -> i64 {
        (*self).event_time()
    }
    fn event_id(&self) -> &str {
        (*self).event_id()
    }

    fn columns(rows: &[&&R]) -> Option<Vec<ArrayRef>> {
        let rows: Vec<&R> = rows.iter().map(|r| **r).collect();
        R::columns(&rows)
    }
}

/// A Firehose record: the row's JSON with the partition keys that dynamic partitioning reads
/// (`.dt`, `.hour`), newline-terminated so the objects Firehose concatenates stay one per line.
/// Record format conversion drops the partition keys, which are not columns.
/// The most a Firehose record may hold (`PutRecordBatch`: 1000 KiB a record).
pub const MAX_RECORD_BYTES: usize = 1000 * 1024;

pub fn firehose_record<R: LakeRow>(row: &R) -> Vec<u8> {
    #[derive(Serialize)]
    struct Record<'r, R> {
        #[serde(flatten)]
        row: &'r R,
        dt: &'r str,
        hour: &'r str,
    }
    let p = Partition::of(row.event_time());
    let mut bytes = serde_json::to_vec(&Record { row, dt: &p.dt, hour: &p.hour }).expect("lake rows always serialize");
    bytes.push(b'\n');
    bytes
}

/// The Hive/Glue type of an Arrow type, as `template.yaml` must declare it.
pub fn glue_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => "string".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(item) => format!("array<{}>", glue_type(item.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields.iter().map(|f| format!("{}:{}", f.name(), glue_type(f.data_type()))).collect();
            format!("struct<{}>", inner.join(","))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map<{},{}>", glue_type(kv[0].data_type()), glue_type(kv[1].data_type()))
            }
            other => unreachable!("a map's entries are a key/value struct, not {other}"),
        },
        other => unreachable!("the lake schemas use no {other} column"),
    }
}

/// `(name, glue type)` of each column of a table, in order, without the partition keys.
pub fn glue_columns(table: Table) -> Vec<(String, String)> {
    table.schema().fields().iter().map(|f| (f.name().clone(), glue_type(f.data_type()))).collect()
}
