//! The plan that makes an account's saved queries equal to the files of `queries/`: which to
//! create, update and delete, and the markers that say which saved queries this stack owns.

use std::collections::BTreeMap;

use voicelake_shared::queries::QueryFile;

/// A saved query as the account holds it or as the repo wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub id: Option<String>,
    pub name: String,
    pub body: String,
    /// Log groups of an Insights query; the database of an Athena named query.
    pub scope: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(Saved),
    Update { id: String, to: Saved },
    Delete { id: String, name: String },
}

/// The changes that make `owned` (the saved queries this stack created) equal to `desired`.
/// Queries the stack does not own are never in `owned`, so they are never touched.
pub fn plan(desired: &[Saved], owned: &[Saved]) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<&Saved>> = BTreeMap::new();
    for o in owned {
        by_name.entry(o.name.as_str()).or_default().push(o);
    }
    for d in desired {
        match by_name.remove(d.name.as_str()) {
            None => changes.push(Change::Create(d.clone())),
            Some(mut current) => {
                let first = current.remove(0);
                let same = first.body == d.body && first.scope == d.scope && first.description == d.description;
                if !same {
                    changes.push(Change::Update { id: first.id.clone().unwrap_or_default(), to: d.clone() });
                }
                // Copies under the same name (an interrupted earlier sync) go.
                for extra in current {
                    changes.push(Change::Delete { id: extra.id.clone().unwrap_or_default(), name: extra.name.clone() });
                }
            }
        }
    }
    for (_, gone) in by_name {
        for g in gone {
            changes.push(Change::Delete { id: g.id.clone().unwrap_or_default(), name: g.name.clone() });
        }
    }
    changes
}

/// The line that marks a saved query as this stack's.
pub fn marker(stack: &str) -> String {
    format!("managed by voicelake stack {stack}")
}

/// The query string deployed for an Insights file: the marker, then the file.
pub fn insights_body(q: &QueryFile, stack: &str) -> String {
    format!("# {}: edit queries/{} in the repo, not here\n{}", marker(stack), q.path, q.text)
}

pub fn owns_insights(body: &str, stack: &str) -> bool {
    body.starts_with(&format!("# {}:", marker(stack)))
}

/// The description of an Athena named query: the file's, then the marker.
pub fn athena_description(q: &QueryFile, stack: &str) -> String {
    let marker = format!(" ({})", marker(stack));
    let room = 1024 - marker.len();
    format!("{}{marker}", voicelake_shared::rows::truncate_utf8(&q.description, room))
}

pub fn owns_athena(description: &str, stack: &str) -> bool {
    description.ends_with(&format!("({})", marker(stack)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(id: &str, name: &str, body: &str) -> Saved {
        Saved { id: Some(id.into()), name: name.into(), body: body.into(), scope: vec!["g".into()], description: String::new() }
    }

    #[test]
    fn the_plan_creates_updates_and_deletes_only_what_it_owns() {
        let desired = vec![saved("", "a", "A2"), saved("", "b", "B"), saved("", "c", "C")];
        let owned = vec![saved("1", "a", "A1"), saved("2", "b", "B"), saved("3", "old", "X"), saved("4", "c", "C"), saved("5", "c", "C")];
        let changes = plan(&desired, &owned);
        assert_eq!(
            changes,
            vec![
                Change::Update { id: "1".into(), to: desired[0].clone() },
                Change::Delete { id: "5".into(), name: "c".into() },
                Change::Delete { id: "3".into(), name: "old".into() },
            ]
        );
        assert!(plan(&desired, &[saved("1", "a", "A2"), saved("2", "b", "B"), saved("4", "c", "C")]).is_empty(), "idempotent");
        assert_eq!(plan(&[], &owned).len(), 5, "a deleted stack removes everything it owns");
        assert_eq!(plan(&desired, &[]).len(), 3);
    }

    #[test]
    fn markers_tell_ownership() {
        let q = QueryFile::parse("insights/x.logsinsights", "# name: x\n# description: d\nfields @message").unwrap();
        assert!(owns_insights(&insights_body(&q, "prod"), "prod"));
        assert!(!owns_insights(&insights_body(&q, "prod"), "dev"));
        assert!(!owns_insights("fields @message", "prod"));
        let a = QueryFile::parse("athena/y.sql", "-- name: y\n-- description: d\nSELECT 1").unwrap();
        assert!(owns_athena(&athena_description(&a, "prod"), "prod"));
        assert!(!owns_athena("d", "prod"));
    }

    #[test]
    fn every_deployed_insights_query_is_within_cloudwatch_limits() {
        use voicelake_shared::queries::{Kind, MAX_NAME_CHARS, MAX_QUERY_CHARS};
        let longest_stack = "a-stack-name-of-sixty-four-characters-is-the-longest-allowed-ok";
        let all = crate::compiled_queries();
        assert!(all.iter().filter(|q| q.kind == Kind::Insights).count() >= 8);
        for q in all.iter().filter(|q| q.kind == Kind::Insights) {
            assert!(insights_body(q, longest_stack).len() <= MAX_QUERY_CHARS, "{}", q.path);
            assert!(format!("voicelake/{}", q.name).len() <= MAX_NAME_CHARS, "{}", q.path);
        }
    }
}
