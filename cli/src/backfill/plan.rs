//! What a backfill does, decided without touching AWS: the time range, its hour windows, the
//! object names, the checkpoint, and the lines of a CloudWatch Logs export.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use voicelake_shared::timefmt;

/// A backfill works an hour at a time: the lake's partitions are hours, so a window's rows land in
/// one partition (a row's own time may place it in a neighbour), and an hour is the unit that is
/// named, checkpointed and replaced.
pub const WINDOW_MS: i64 = 3_600_000;

/// A window is checkpointed as done only once this long has passed since its end, so that events
/// CloudWatch Logs was still ingesting when it was read are not left out for good.
pub const SETTLE_MS: i64 = 10 * 60_000;

/// `--start` / `--end`: RFC 3339, `now`, or a duration before now (`30d`, `12h`, `90m`, `2w`).
pub fn parse_when(text: &str, now_ms: i64) -> Result<i64> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_ms);
    }
    if let Some(ms) = timefmt::parse_event_time(text) {
        return Ok(ms);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ms = match unit {
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => bail!("{text:?} is neither an RFC 3339 time nor a duration before now such as 30d, 12h or 90m"),
    };
    let n: i64 = number.parse().with_context(|| format!("{text:?}: a duration needs a whole number before its unit"))?;
    Ok(now_ms - n * unit_ms)
}

/// One hour of one log group, and the part of it this run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRead {
    /// The hour's start: the window's name and checkpoint entry.
    pub hour: i64,
    /// What is read: `[from, until)`, the hour clipped to the run's range and to now.
    pub from: i64,
    pub until: i64,
    /// The whole hour is read and it ended long enough ago: a later run can skip it.
    pub complete: bool,
}

impl HourRead {
    /// `20261120T10`: the hour in the names of the objects written for it.
    pub fn label(&self) -> String {
        timefmt::utc(self.hour).format("%Y%m%dT%H").to_string()
    }
}

/// The hour windows that cover `[start, end)`, read up to now at most.
pub fn windows(start: i64, end: i64, now_ms: i64) -> Vec<HourRead> {
    let end = end.min(now_ms);
    let mut out = Vec::new();
    let mut hour = start.div_euclid(WINDOW_MS) * WINDOW_MS;
    while hour < end {
        let next = hour + WINDOW_MS;
        let (from, until) = (hour.max(start), next.min(end));
        if from >= until {
            break;
        }
        out.push(HourRead { hour, from, until, complete: from == hour && until == next && next + SETTLE_MS <= now_ms });
        hour = next;
    }
    out
}

/// A name fit for an object key, that two sources cannot share: the readable part of `source`
/// and a digest of all of it (log group names differ in characters that keys drop).
pub fn slug(source: &str) -> String {
    let readable: String = source
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let readable: String = readable.chars().take(48).collect();
    let digest = Sha256::digest(source.as_bytes());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    if readable.is_empty() { short } else { format!("{readable}-{short}") }
}

/// The object name (below the table's partition folder, before `.parquet`) of part `part` of a
/// unit of work: the same source and unit always give the same names, so a second run replaces
/// what the first wrote instead of adding to it.
pub fn object_name(source_slug: &str, unit: &str, part: usize) -> String {
    format!("backfill-{source_slug}-{unit}-{part}")
}

/// How far a backfill got, kept in a file between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where the rows went: a checkpoint of one lake says nothing about another.
    pub destination: String,
    /// Per source (`logs:GROUP`, `export:LOCATION`), the units finished: hours for log groups
    /// (`2026-11-20T10`), object keys for exports.
    pub done: BTreeMap<String, BTreeSet<String>>,
}

impl Checkpoint {
    /// The checkpoint at `path` for `destination`, or an empty one when there is none yet.
    pub fn load(path: &Path, destination: &str) -> Result<Checkpoint> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Checkpoint { destination: destination.to_owned(), done: BTreeMap::new() });
            }
            Err(e) => return Err(e).with_context(|| format!("reading the checkpoint {}", path.display())),
        };
        let checkpoint: Checkpoint =
            serde_json::from_str(&text).with_context(|| format!("{} is not a backfill checkpoint", path.display()))?;
        if checkpoint.destination != destination {
            bail!(
                "the checkpoint {} records a backfill into {}, not {destination}: give another --checkpoint, or delete it to start over",
                path.display(),
                checkpoint.destination
            );
        }
        Ok(checkpoint)
    }

    pub fn is_done(&self, source: &str, unit: &str) -> bool {
        self.done.get(source).is_some_and(|units| units.contains(unit))
    }

    pub fn mark(&mut self, source: &str, unit: &str) {
        self.done.entry(source.to_owned()).or_default().insert(unit.to_owned());
    }

    /// Writes the whole checkpoint to a temporary file beside `path` and renames it over `path`,
    /// so an interruption leaves the old checkpoint or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".{}.tmp", path.file_name().map_or("checkpoint".into(), |n| n.to_string_lossy())));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("a checkpoint serializes"))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing the checkpoint {}", path.display()))
    }
}

/// The checkpoint entry of an hour: `2026-11-20T10`.
pub fn hour_unit(hour: i64) -> String {
    timefmt::utc(hour).format("%Y-%m-%dT%H").to_string()
}

/// A line of a CloudWatch Logs export (`CreateExportTask`): the event's time in RFC 3339, a space,
/// the message. `None` for a line that is not one.
pub fn export_line(line: &str) -> Option<(i64, &str)> {
    let (time, message) = line.split_once(' ')?;
    Some((timefmt::parse_event_time(time)?, message))
}

/// The log stream of an export object. An export writes `PREFIX/TASK-ID/STREAM/000000.gz`, and a
/// stream's name may itself hold `/`: the stream is what lies between the task's id (a UUID) and
/// the file, or the file's folder when no part of the key is a task id.
pub fn export_stream(key: &str) -> &str {
    let Some((folder, _file)) = key.rsplit_once('/') else { return "export" };
    let mut offset = 0;
    for part in folder.split('/') {
        offset += part.len() + 1;
        if is_uuid(part) && offset <= folder.len() {
            return &folder[offset..];
        }
    }
    folder.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("export")
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether an object below the prefix may hold log events: an export's `KEY.gz` objects, or the
/// objects a subscription filter to Firehose archives (no extension of their own). An export also
/// writes an `aws-logs-write-test` object, and a console may leave folder markers: neither is read.
pub fn is_export_object(key: &str) -> bool {
    !key.ends_with('/') && key.rsplit('/').next() != Some("aws-logs-write-test")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18T11:06:40Z

    #[test]
    fn times_are_rfc3339_or_durations_before_now() {
        assert_eq!(parse_when("now", NOW).unwrap(), NOW);
        assert_eq!(parse_when("30d", NOW).unwrap(), NOW - 30 * 86_400_000);
        assert_eq!(parse_when("12h", NOW).unwrap(), NOW - 12 * 3_600_000);
        assert_eq!(parse_when("90m", NOW).unwrap(), NOW - 90 * 60_000);
        assert_eq!(parse_when("2026-11-20T10:00:00Z", NOW).unwrap(), timefmt::parse_event_time("2026-11-20T10:00:00Z").unwrap());
        for bad in ["30", "d", "30x", "yesterday", ""] {
            assert!(parse_when(bad, NOW).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn windows_are_whole_hours_clipped_to_the_range_and_to_now() {
        let hour = |h: i64| 1_795_000_000_000_i64.div_euclid(WINDOW_MS) * WINDOW_MS - h * WINDOW_MS;
        // From 3 h 30 min before the current hour to now: the first hour is read from its middle,
        // the current one up to now, and neither is complete.
        let start = hour(3) - WINDOW_MS / 2;
        let w = windows(start, NOW, NOW);
        assert_eq!(w.len(), 5);
        assert_eq!((w[0].hour, w[0].from, w[0].until, w[0].complete), (hour(4), start, hour(3), false));
        assert!(w[1..4].iter().all(|w| w.until - w.from == WINDOW_MS));
        assert!(w[1].complete && w[2].complete);
        assert!(!w[3].complete, "the last whole hour ended 6 min ago: it may still be ingesting");
        assert_eq!((w[4].hour, w[4].from, w[4].until, w[4].complete), (hour(0), hour(0), NOW, false));
        // The last whole hour is not complete until it has settled.
        let just_after = hour(0) + SETTLE_MS - 1;
        assert!(!windows(hour(1), hour(0), just_after)[0].complete);
        assert!(windows(hour(1), hour(0), hour(0) + SETTLE_MS)[0].complete);
        // Windows do not reach past now, nor exist for an empty range.
        assert!(windows(NOW, NOW + WINDOW_MS * 5, NOW).is_empty());
        assert!(windows(hour(2), hour(2), NOW).is_empty());
        // Consecutive windows do not overlap, and together they are the range.
        let w = windows(start, NOW, NOW);
        assert!(w.windows(2).all(|p| p[0].until == p[1].from));
        assert_eq!((w[0].from, w.last().unwrap().until), (start, NOW));
    }

    #[test]
    fn names_are_the_same_for_the_same_source_and_hour_and_differ_otherwise() {
        let a = slug("/ecs/voice-agent");
        assert!(a.starts_with("ecs-voice-agent-"), "{a}");
        assert_eq!(a, slug("/ecs/voice-agent"));
        assert_ne!(a, slug("ecs/voice-agent"), "groups that only differ in dropped characters get different names");
        assert_eq!(slug("#"), slug("#"));
        assert_eq!(object_name(&a, "20261120T10", 0), format!("backfill-{a}-20261120T10-0"));
        let w = windows(1_795_000_000_000, 1_795_000_000_001, 1_800_000_000_000)[0];
        assert_eq!(w.label(), "20261118T11");
        assert_eq!(hour_unit(w.hour), "2026-11-18T11");
    }

    #[test]
    fn a_checkpoint_round_trips_and_belongs_to_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/checkpoint.json");
        let mut c = Checkpoint::load(&path, "s3://lake/").unwrap();
        assert!(!c.is_done("logs:/a", "2026-11-20T10"));
        c.mark("logs:/a", "2026-11-20T10");
        c.save(&path).unwrap();
        let again = Checkpoint::load(&path, "s3://lake/").unwrap();
        assert_eq!(again, c);
        assert!(again.is_done("logs:/a", "2026-11-20T10"));
        assert!(!again.is_done("logs:/b", "2026-11-20T10"));
        let err = Checkpoint::load(&path, "other-lake").unwrap_err().to_string();
        assert!(err.contains("s3://lake/") && err.contains("other-lake"), "{err}");
        std::fs::write(&path, "not json").unwrap();
        assert!(Checkpoint::load(&path, "s3://lake/").is_err());
    }

    #[test]
    fn export_lines_and_keys() {
        let (t, m) = export_line("2026-11-20T10:00:01.250Z {\"event\":\"voice_metrics\"}").unwrap();
        assert_eq!((t, m), (timefmt::parse_event_time("2026-11-20T10:00:01.250Z").unwrap(), "{\"event\":\"voice_metrics\"}"));
        assert_eq!(export_line("2026-11-20T10:00:01.250Z a b c").unwrap().1, "a b c");
        assert!(export_line("no time here").is_none());
        assert!(export_line("").is_none());
        let task = "0d3f5a1e-8b2c-4d6e-9f10-1a2b3c4d5e6f";
        assert_eq!(export_stream(&format!("exports/{task}/ecs/agent/abc123/000000.gz")), "ecs/agent/abc123");
        assert_eq!(export_stream(&format!("{task}/abc123/000001.gz")), "abc123");
        assert_eq!(export_stream("copy/abc123/000000.gz"), "abc123");
        assert_eq!(export_stream("000000.gz"), "export");
        assert!(is_export_object("exports/1234/stream/000001.gz"));
        assert!(is_export_object("cwl/2026/11/30/10/voicelake-archive-1-2026-11-30-10-00-00-0f1e2d3c"));
        assert!(!is_export_object("exports/folder/"));
        assert!(!is_export_object("exports/aws-logs-write-test"));
    }
}
