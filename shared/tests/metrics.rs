//! Metric datums are exact: what CloudWatch receives is what the batch held, within the API limits.

use voicelake_shared::metrics::{self, Datum, MAX_DATUMS_PER_REQUEST, MAX_REQUEST_BYTES, MAX_VALUES_PER_DATUM, Unit, dim, metric};
use voicelake_shared::rows::{SourceFormat, TurnRow};
use voicelake_shared::{BatchOutput, BatchStats, Config, process_batch};
use voicelake_synth::{self as synth, SynthOptions};

const MINUTE: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z
const NOW: i64 = MINUTE + 120_000;

fn turn(agent: &str, at: i64, eou: f64, ttft: f64, ttfb: f64) -> TurnRow {
    let mut row = TurnRow {
        event_id: at.to_string(),
        event_time: at,
        agent_name: agent.into(),
        environment: "prod".into(),
        eou_delay_ms: Some(eou),
        llm_ttft_ms: Some(ttft),
        tts_ttfb_ms: Some(ttfb),
        source_format: SourceFormat::AppVoiceMetrics,
        component_events: 1,
        ..TurnRow::default()
    };
    row.settle_latency(None, config().latency_target_ms);
    row
}

fn config() -> Config {
    Config { environment: "prod".into(), ..Config::default() }
}

fn find<'a>(datums: &'a [Datum], name: &str, dims: &[(&str, &str)]) -> Vec<&'a Datum> {
    datums
        .iter()
        .filter(|d| d.metric_name == name)
        .filter(|d| d.dimensions.len() == dims.len() && dims.iter().all(|(k, v)| d.dimensions.iter().any(|(dk, dv)| dk == k && dv == v)))
        .collect()
}

#[test]
fn latencies_are_values_and_counts_at_one_millisecond() {
    let out = BatchOutput {
        turns: vec![
            turn("a", MINUTE + 1_000, 400.4, 300.0, 200.0),  // 900.4 → 900
            turn("a", MINUTE + 2_000, 400.6, 300.0, 200.0),  // 900.6 → 901
            turn("b", MINUTE + 3_000, 400.0, 300.0, 200.4),  // 900.4 → 900
            turn("b", MINUTE + 61_000, 800.0, 700.0, 100.0), // next minute, over target
        ],
        stats: BatchStats { events_in: 4, events_used: 4, turns: 4, ..BatchStats::default() },
        event_timestamps: vec![NOW - 10_000, NOW - 20_000, NOW - 20_000, NOW - 5],
        ..BatchOutput::default()
    };
    let datums = metrics::datums_for(&out, &config(), NOW);

    let env = find(&datums, "TurnLatency", &[(dim::ENVIRONMENT, "prod")]);
    assert_eq!(
        env.iter().map(|d| (d.timestamp_ms, d.values.clone(), d.counts.clone())).collect::<Vec<_>>(),
        vec![(MINUTE, vec![900.0, 901.0], vec![2.0, 1.0]), (MINUTE + 60_000, vec![1600.0], vec![1.0])]
    );
    assert!(env.iter().all(|d| d.unit == Unit::Milliseconds));
    let agent_a = find(&datums, "TurnLatency", &[(dim::ENVIRONMENT, "prod"), (dim::AGENT, "a")]);
    assert_eq!((agent_a[0].values.clone(), agent_a[0].counts.clone()), (vec![900.0, 901.0], vec![1.0, 1.0]));

    let over = find(&datums, "TurnsOverTarget", &[(dim::ENVIRONMENT, "prod")]);
    assert_eq!(over.iter().map(|d| d.values[0]).collect::<Vec<_>>(), vec![0.0, 1.0]);
    let turns = find(&datums, "Turns", &[(dim::ENVIRONMENT, "prod")]);
    assert_eq!(turns.iter().map(|d| (d.values[0], d.counts[0])).collect::<Vec<_>>(), vec![(3.0, 1.0), (1.0, 1.0)]);

    let lag = find(&datums, "IngestLag", &[(dim::ENVIRONMENT, "prod")]);
    assert_eq!(
        (lag[0].timestamp_ms, lag[0].values.clone(), lag[0].counts.clone()),
        (NOW, vec![5.0, 10_000.0, 20_000.0], vec![1.0, 1.0, 2.0])
    );
    let events = find(&datums, "EventsIn", &[(dim::ENVIRONMENT, "prod")]);
    assert_eq!(events[0].values, vec![4.0]);
    assert!(find(&datums, "EventsIn", &[(dim::ENVIRONMENT, "prod"), (dim::AGENT, "a")]).is_empty(), "health is per environment only");
}

#[test]
fn more_than_150_distinct_values_split_into_datums_that_keep_every_sample() {
    let turns: Vec<TurnRow> = (0..1000).map(|i| turn("a", MINUTE + i, 100.0 + i as f64, 100.0, 100.0)).collect();
    let out = BatchOutput { turns, ..BatchOutput::default() };
    let datums = metrics::datums_for(&out, &config(), NOW);
    let latency = find(&datums, "TurnLatency", &[(dim::ENVIRONMENT, "prod")]);
    assert_eq!(latency.len(), 1000usize.div_ceil(MAX_VALUES_PER_DATUM));
    assert!(latency.iter().all(|d| d.values.len() <= MAX_VALUES_PER_DATUM));
    assert_eq!(latency.iter().map(|d| d.sample_count()).sum::<f64>(), 1000.0);
    let mut all: Vec<f64> = latency.iter().flat_map(|d| d.values.clone()).collect();
    all.dedup();
    assert_eq!(all.len(), 1000, "each value in exactly one datum");
}

#[test]
fn requests_respect_the_datum_and_byte_limits() {
    let small = |i: usize| Datum {
        metric_name: "Turns",
        unit: Unit::Count,
        dimensions: vec![("Environment", "prod".into()), ("Agent", format!("agent-{i}"))],
        timestamp_ms: MINUTE,
        values: vec![1.0],
        counts: vec![1.0],
    };
    let requests = metrics::split_requests((0..2500).map(small).collect());
    assert_eq!(requests.iter().map(Vec::len).collect::<Vec<_>>(), vec![MAX_DATUMS_PER_REQUEST, MAX_DATUMS_PER_REQUEST, 500]);

    let wide = |i: usize| Datum { values: (0..150).map(|v| (v + i) as f64).collect(), counts: vec![1.0; 150], ..small(i) };
    let requests = metrics::split_requests((0..500).map(wide).collect());
    assert!(requests.len() > 1, "500 datums of 150 values exceed 1 MB");
    for r in &requests {
        assert!(r.iter().map(Datum::estimated_bytes).sum::<usize>() <= MAX_REQUEST_BYTES);
    }
    assert_eq!(requests.iter().map(Vec::len).sum::<usize>(), 500, "nothing dropped");
}

#[test]
fn sample_counts_equal_the_turns_of_generated_traffic() {
    let opts = SynthOptions { calls: 60, start_ms: NOW - 3_600_000, ..SynthOptions::default() };
    let config = config();
    let mut complete = 0u64;
    let mut by_agent = std::collections::BTreeMap::<String, f64>::new();
    let mut env_samples = 0.0;
    for b in synth::generate(&opts) {
        let out = process_batch(&b, &config, NOW);
        complete += out.turns.iter().filter(|t| t.is_complete).count() as u64;
        let datums = metrics::datums_for(&out, &config, NOW);
        env_samples += find(&datums, "TurnLatency", &[(dim::ENVIRONMENT, "prod")]).iter().map(|d| d.sample_count()).sum::<f64>();
        for d in datums.iter().filter(|d| d.metric_name == "TurnLatency" && d.dimensions.len() == 2) {
            *by_agent.entry(d.dimensions[1].1.clone()).or_default() += d.sample_count();
        }
    }
    assert!(complete > 300);
    assert_eq!(env_samples, complete as f64);
    assert_eq!(by_agent.values().sum::<f64>(), complete as f64);
    assert_eq!(by_agent.len(), 3);
}

#[test]
fn events_outside_cloudwatch_s_window_go_to_the_lake_only_and_are_counted() {
    let out = BatchOutput {
        turns: vec![turn("a", NOW - 15 * 24 * 3_600_000, 1.0, 1.0, 1.0), turn("a", NOW + 3 * 3_600_000, 1.0, 1.0, 1.0)],
        ..BatchOutput::default()
    };
    let datums = metrics::datums_for(&out, &config(), NOW);
    assert!(find(&datums, "TurnLatency", &[(dim::ENVIRONMENT, "prod")]).is_empty());
    assert_eq!(find(&datums, "EventsOutsideMetricWindow", &[(dim::ENVIRONMENT, "prod")])[0].values, vec![2.0]);
}

#[test]
fn optional_dimensions_follow_the_configuration() {
    let mut row = turn("a", MINUTE, 400.0, 300.0, 200.0);
    row.llm_provider = Some("openai".into());
    row.llm_model = Some("gpt-4o-mini".into());
    row.tenant_id = Some("acme".into());
    let out = BatchOutput { turns: vec![row], ..BatchOutput::default() };
    let off = metrics::datums_for(&out, &config(), NOW);
    assert!(off.iter().all(|d| d.dimensions.iter().all(|(k, _)| *k != dim::MODEL && *k != dim::TENANT)));
    let on = Config { model_dimension: true, tenant_dimension: true, ..config() };
    let datums = metrics::datums_for(&out, &on, NOW);
    assert_eq!(find(&datums, "LLMTimeToFirstToken", &[(dim::ENVIRONMENT, "prod"), (dim::MODEL, "openai/gpt-4o-mini")]).len(), 1);
    assert_eq!(find(&datums, "TurnLatency", &[(dim::ENVIRONMENT, "prod"), (dim::TENANT, "acme")]).len(), 1);
    // What is published is what `dimension_sets` declares (the template's alarms rely on it).
    for d in &datums {
        let spec = metric::ALL.iter().find(|s| s.name == d.metric_name).unwrap();
        let names: Vec<&str> = d.dimensions.iter().map(|(k, _)| *k).collect();
        assert!(metrics::dimension_sets(spec, &on).contains(&names), "{} {names:?}", d.metric_name);
    }
}

#[test]
fn the_metric_table_is_consistent() {
    for (i, spec) in metric::ALL.iter().enumerate() {
        assert_eq!(spec.index, i, "{}", spec.name);
        assert!(spec.name.len() <= 255 && !spec.description.is_empty());
    }
}
