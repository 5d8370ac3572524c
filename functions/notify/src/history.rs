//! What an alarm's history says about this transition: how long the alarm it ends lasted, and
//! whether the alarm is flapping. Stateless: everything comes from `DescribeAlarmHistory`.

use serde::Deserialize;

use crate::message::State;

/// One state change of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at_ms: i64,
    pub to: State,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryData {
    new_state: HistoryState,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryState {
    state_value: State,
}

/// The transition a `StateUpdate` history item records: its `HistoryData` JSON, or the summary
/// ("Alarm updated from OK to ALARM") when the data cannot be read.
pub fn transition(at_ms: i64, history_data: Option<&str>, summary: Option<&str>) -> Option<Transition> {
    let from_data = history_data.and_then(|d| serde_json::from_str::<HistoryData>(d).ok()).map(|d| d.new_state.state_value);
    let from_summary = || {
        let to = summary?.rsplit(" to ").next()?.trim();
        serde_json::from_value::<State>(serde_json::Value::String(to.to_owned())).ok()
    };
    Some(Transition { at_ms, to: from_data.or_else(from_summary)? })
}

/// How to notify this transition, given the others of the cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One message for this transition.
    Normal,
    /// The alarm just started flapping: one condensed message for `transitions` changes since
    /// `since_ms`.
    Flapping { transitions: usize, since_ms: i64 },
    /// Already reported as flapping within the cooldown: no message.
    Held { transitions: usize },
}

/// Transitions within the cooldown that make an alarm flapping: it went in, out and in again.
pub const FLAPPING_TRANSITIONS: usize = 3;

/// `history` may or may not hold `now` yet (CloudWatch writes history and notifies concurrently).
pub fn pace(history: &[Transition], now: Transition, cooldown_ms: i64) -> Pace {
    let mut recent: Vec<i64> = history.iter().map(|t| t.at_ms).filter(|t| *t > now.at_ms - cooldown_ms && *t <= now.at_ms).collect();
    if !recent.contains(&now.at_ms) {
        recent.push(now.at_ms);
    }
    recent.sort_unstable();
    recent.dedup();
    match recent.len() {
        n if n < FLAPPING_TRANSITIONS => Pace::Normal,
        n if n == FLAPPING_TRANSITIONS => Pace::Flapping { transitions: n, since_ms: recent[0] },
        n => Pace::Held { transitions: n },
    }
}

/// For an OK (or INSUFFICIENT_DATA) transition after ALARM: how long the alarm lasted, from the
/// latest transition into ALARM before it.
pub fn alarm_lasted_ms(history: &[Transition], now: Transition) -> Option<i64> {
    history.iter().filter(|t| t.to == State::Alarm && t.at_ms < now.at_ms).map(|t| t.at_ms).max().map(|start| now.at_ms - start)
}

/// "1 h 05 min", "12 min", "40 s".
pub fn duration_words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => format!("{s} s"),
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn t(min: i64, to: State) -> Transition {
        Transition { at_ms: min * MIN, to }
    }

    #[test]
    fn history_items_are_read_from_their_data_or_summary() {
        let data =
            r#"{"version":"1.0","oldState":{"stateValue":"OK","stateReason":"x"},"newState":{"stateValue":"ALARM","stateReason":"y"}}"#;
        assert_eq!(transition(5, Some(data), None), Some(Transition { at_ms: 5, to: State::Alarm }));
        assert_eq!(transition(5, Some("not json"), Some("Alarm updated from ALARM to OK")).map(|t| t.to), Some(State::Ok));
        assert_eq!(transition(5, None, Some("Alarm updated from OK to INSUFFICIENT_DATA")).map(|t| t.to), Some(State::InsufficientData));
        assert_eq!(transition(5, None, Some("Alarm configuration updated")), None);
    }

    #[test]
    fn the_third_transition_of_a_cooldown_is_one_flapping_message_and_later_ones_are_held() {
        let cooldown = 30 * MIN;
        let history = [t(100, State::Alarm), t(104, State::Ok), t(109, State::Alarm), t(113, State::Ok)];
        assert_eq!(pace(&history[..1], t(100, State::Alarm), cooldown), Pace::Normal);
        assert_eq!(pace(&history[..2], t(104, State::Ok), cooldown), Pace::Normal);
        // Whether or not the history holds the current transition yet.
        assert_eq!(pace(&history[..2], t(109, State::Alarm), cooldown), Pace::Flapping { transitions: 3, since_ms: 100 * MIN });
        assert_eq!(pace(&history[..3], t(109, State::Alarm), cooldown), Pace::Flapping { transitions: 3, since_ms: 100 * MIN });
        assert_eq!(pace(&history, t(113, State::Ok), cooldown), Pace::Held { transitions: 4 });
        // Once the cooldown has passed quietly, a transition is news again.
        assert_eq!(pace(&history, t(160, State::Alarm), cooldown), Pace::Normal);
    }

    #[test]
    fn an_ok_says_how_long_the_alarm_lasted() {
        let history = [t(10, State::Alarm), t(20, State::Ok), t(100, State::Alarm)];
        assert_eq!(alarm_lasted_ms(&history, t(165, State::Ok)), Some(65 * MIN));
        assert_eq!(duration_words(65 * MIN), "1 h 05 min");
        assert_eq!(duration_words(12 * MIN + 5_000), "12 min");
        assert_eq!(alarm_lasted_ms(&[], t(165, State::Ok)), None);
    }
}
