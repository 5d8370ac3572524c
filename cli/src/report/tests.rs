use super::*;
use voicelake_shared::config::Config;
use voicelake_synth::{self as synth, SynthOptions};

/// Every store spilled after a record or two, every percentile selected past its limit, calls
/// grouped five turns at a time: the report and the charts are those of the state in memory.
#[test]
fn a_report_past_every_limit_equals_the_report_held_in_memory() {
    let start_ms = 1_788_220_800_000;
    let config = Config::default();
    let mut in_memory = ReportBuilder::with_limits(Limits { chunk_bytes: usize::MAX, values: usize::MAX, group: usize::MAX });
    let mut spilled = ReportBuilder::with_limits(Limits { chunk_bytes: 64, values: 3, group: 5 });
    for calls in [(400, 21), (60, 22)] {
        let batches = synth::generate(&SynthOptions { calls: calls.0, seed: calls.1, start_ms, noise: true, outage: None });
        for batch in &batches {
            let out = voicelake_shared::process_batch(batch, &config, start_ms + 86_400_000);
            in_memory.add(&out).unwrap();
            spilled.add(&out).unwrap();
        }
    }
    assert!(in_memory.turns.len() > 1000 && in_memory.rejects.len() > 10, "{:?} {:?}", in_memory.turns, in_memory.rejects);
    let report = in_memory.finish(&config).unwrap();
    assert!(report.alarms.iter().any(|a| a.diagnosis.is_some()), "a diagnosis is compared too");
    assert!(report.counts.sessions > 400, "{:?}", report.counts);
    assert_eq!(spilled.finish(&config).unwrap(), report);
    assert_eq!(spilled.charts(&config).unwrap(), in_memory.charts(&config).unwrap());
}

#[test]
fn nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), Some(50.0));
    assert_eq!(percentile(&v, 95.0), Some(95.0));
    assert_eq!(percentile(&v, 99.0), Some(99.0));
    assert_eq!(percentile(&v, 100.0), Some(100.0));
    assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
    assert_eq!(percentile(&[], 95.0), None);
}
