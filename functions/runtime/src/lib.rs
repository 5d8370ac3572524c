//! What the three functions (ingest, notify, query-sync) share at their edge, so that each `main.rs`
//! is wiring only: the log subscriber ([`logging`]), the time an invocation may spend
//! ([`Budget`]), and the deployment's pseudonym key ([`key`]). Its dependencies are the union of
//! the functions' (see `Cargo.toml`): `sam build` resolves one set for all three.

use std::time::{Duration, SystemTime};

pub mod key;
pub mod logging;

/// How an invocation budgets its time from the deadline Lambda gives it.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The time taken as left when the deadline has already passed: the template's timeout for a
    /// function that local emulators invoke with a past deadline, or none for one that must answer
    /// before anything else (the floor then applies).
    pub if_past: Duration,
    /// Kept back from the work for what must follow it (delivering, answering CloudFormation).
    pub reserve: Duration,
    /// The least the work gets, whatever is left.
    pub floor: Duration,
}

impl Budget {
    /// The whole of the time left, nothing kept back.
    pub const fn whole(timeout: Duration) -> Budget {
        Budget { if_past: timeout, reserve: Duration::ZERO, floor: Duration::ZERO }
    }

    /// The time left before `deadline` (Lambda's, for an invocation that started at `now`), less
    /// the reserve and at least the floor.
    pub fn left(&self, deadline: SystemTime, now: SystemTime) -> Duration {
        let left = deadline.duration_since(now).unwrap_or_else(|_| {
            tracing::warn!(budget_s = self.if_past.as_secs(), "the invocation's deadline has passed");
            self.if_past
        });
        left.saturating_sub(self.reserve).max(self.floor)
    }

    /// When the work of the invocation of `context`, started at `now`, must end.
    pub fn deadline(&self, context: &lambda_runtime::Context, now: SystemTime) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.left(context.deadline(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_what_is_left_less_the_reserve_and_at_least_the_floor() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let budget = Budget { if_past: Duration::from_secs(60), reserve: Duration::from_secs(15), floor: Duration::from_secs(5) };
        assert_eq!(budget.left(now + Duration::from_secs(40), now), Duration::from_secs(25));
        assert_eq!(budget.left(now + Duration::from_secs(10), now), Duration::from_secs(5), "the floor");
        assert_eq!(budget.left(now - Duration::from_secs(1), now), Duration::from_secs(45), "a deadline past: the timeout");
        let answer_first = Budget { if_past: Duration::ZERO, ..budget };
        assert_eq!(answer_first.left(now - Duration::from_secs(1), now), Duration::from_secs(5), "a deadline past: the floor");
        assert_eq!(Budget::whole(Duration::from_secs(60)).left(now + Duration::from_secs(30), now), Duration::from_secs(30));
    }
}
