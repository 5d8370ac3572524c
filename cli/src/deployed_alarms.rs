//! The local evaluation of the alarms of `voicelake_shared::alarms` on a replay's period series:
//! CloudWatch's M-of-N rule, with missing periods treated as not breaching (the template's
//! `TreatMissingData: notBreaching`).

use voicelake_shared::alarms::{AlarmSpec, DEFAULTS};
use voicelake_shared::config::Config;

/// The alarms as the stack deploys them with this configuration: in the template one parameter,
/// `TurnLatencyP95ThresholdMs`, is both the latency target and the turn-latency alarm's threshold,
/// so locally `--target-ms` is both too; the others take the deployment's parameters where it sets
/// them (`voicelake replay --params samconfig.toml`).
pub fn deployed(config: &Config) -> Vec<AlarmSpec> {
    DEFAULTS
        .iter()
        .map(|spec| AlarmSpec {
            threshold: if spec.parameter == LATENCY_PARAMETER {
                config.latency_target_ms
            } else {
                config.alarm_thresholds.get(spec.parameter).copied().unwrap_or(spec.threshold)
            },
            ..*spec
        })
        .collect()
}

/// The template parameter that is both the latency target and the turn-latency alarm's threshold.
pub const LATENCY_PARAMETER: &str = "TurnLatencyP95ThresholdMs";

/// The alarm thresholds and the latency target a deployment's parameters set: each default alarm's
/// parameter that `parameters` holds, as a number.
pub fn thresholds_of(parameters: &std::collections::BTreeMap<String, String>) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let mut found = Vec::new();
    for spec in &DEFAULTS {
        if let Some(text) = parameters.get(spec.parameter) {
            let value: f64 = text
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| anyhow::anyhow!("the parameter {} is {text:?}, not a number", spec.parameter))?;
            found.push((spec.parameter, value));
        }
    }
    Ok(found)
}

/// Whether `breaching` (one flag per consecutive period, missing periods not breaching) holds an
/// M-of-N window: CloudWatch's `DatapointsToAlarm` of `EvaluationPeriods`.
pub fn would_fire(spec: &AlarmSpec, breaching: &[bool]) -> bool {
    let n = spec.evaluation_periods as usize;
    let m = spec.datapoints_to_alarm as usize;
    if breaching.is_empty() {
        return false;
    }
    if breaching.len() < n {
        return breaching.iter().filter(|b| **b).count() >= m;
    }
    breaching.windows(n).any(|w| w.iter().filter(|b| **b).count() >= m)
}

/// The indexes of the periods at whose end the alarm is in ALARM: at least M of the N periods up to
/// and including it breach (fewer at the start of the series). Non-empty exactly when
/// [`would_fire`] holds.
pub fn firing_periods(spec: &AlarmSpec, breaching: &[bool]) -> Vec<usize> {
    let n = spec.evaluation_periods as usize;
    let m = spec.datapoints_to_alarm as usize;
    (0..breaching.len()).filter(|&i| breaching[(i + 1).saturating_sub(n)..=i].iter().filter(|b| **b).count() >= m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicelake_shared::alarms::DEFAULTS;

    #[test]
    fn two_of_three_needs_two_breaches_within_three_periods() {
        let spec = DEFAULTS[0];
        assert!(!would_fire(&spec, &[true, false, false, true]));
        assert!(would_fire(&spec, &[true, false, true]));
        assert!(would_fire(&spec, &[false, true, true]));
        assert!(!would_fire(&spec, &[true]));
        assert!(!would_fire(&spec, &[]));
    }

    #[test]
    fn an_alarm_fires_in_some_period_exactly_when_it_would_fire() {
        for spec in DEFAULTS {
            for bits in 0u32..(1 << 7) {
                for len in 0..=7 {
                    let breaching: Vec<bool> = (0..len).map(|i| bits & (1 << i) != 0).collect();
                    assert_eq!(!firing_periods(&spec, &breaching).is_empty(), would_fire(&spec, &breaching), "{} {breaching:?}", spec.id);
                }
            }
        }
        assert_eq!(firing_periods(&DEFAULTS[0], &[true, false, true, true, false, false]), vec![2, 3, 4]);
    }
}
