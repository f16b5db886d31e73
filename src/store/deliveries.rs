//! Inbound deliveries already taken: Slack redelivers an envelope (to any open connection of
//! the app, so to any replica) when the ack was late or lost. The key of a delivery (an event's
//! `event_id`, a submission's view and hash, a command's trigger) is recorded once; the first
//! caller gets `true` and does the work, every later one (here or on another replica) `false`.

use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{millis, Lane, Store};

/// How long a delivery key is remembered: Slack retries within minutes, never after an hour.
pub const DELIVERY_MEMORY: chrono::Duration = chrono::Duration::hours(1);

impl Store {
    /// Record the delivery `key` at `now`; true the first time anyone recorded it. Intent lane:
    /// called inside an ack.
    pub async fn first_delivery(&self, key: &str, now: DateTime<Utc>) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.first_delivery(key, now).await;
        }
        let key = key.to_string();
        self.with(Lane::Intent, move |c| {
            Ok(c.prepare_cached(
                "INSERT INTO inbound_seen (key, seen_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![key, millis(now)])?
                == 1)
        })
        .await
    }

    /// Forget delivery keys recorded before `before`. Returns how many.
    pub async fn forget_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        if let Some(pg) = self.pg() {
            return pg.forget_deliveries(before).await;
        }
        self.with(Lane::General, move |c| {
            Ok(
                c.prepare_cached("DELETE FROM inbound_seen WHERE seen_at < ?1")?
                    .execute([millis(before)])? as u64,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::{each_backend, t};

    #[tokio::test]
    async fn a_delivery_is_first_only_once_and_forgotten_after_an_hour() {
        each_backend(|s| async move {
            assert!(s.first_delivery("event:Ev1", t(0)).await.unwrap());
            assert!(!s.first_delivery("event:Ev1", t(5)).await.unwrap());
            assert!(s.first_delivery("event:Ev2", t(10)).await.unwrap());
            assert_eq!(s.forget_deliveries(t(6)).await.unwrap(), 1);
            assert!(s.first_delivery("event:Ev1", t(20)).await.unwrap());
            assert!(!s.first_delivery("event:Ev2", t(20)).await.unwrap());
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_callers_racing_on_one_delivery_see_exactly_one_first() {
        each_backend(|s| async move {
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    s.first_delivery("submission:V1", t(0)).await.unwrap()
                }));
            }
            let mut firsts = 0;
            for task in tasks {
                firsts += usize::from(task.await.unwrap());
            }
            assert_eq!(firsts, 1);
        })
        .await;
    }
}
