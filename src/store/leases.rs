//! Leases: work that any process could do, claimed by one at a time through the store.
//!
//! A lease is a row `(key, owner, expires_at)`. Claiming succeeds when nobody holds the key, the
//! holder's lease expired, or the caller already holds it (which renews it). A process renews
//! what it works on well before expiry; a process that died stops renewing, and after the lease
//! expires another one takes the work over. With SQLite there is one process; the same calls
//! let several replicas share a PostgreSQL database later.

use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{millis, Lane, Store};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Claim (or renew) `key` for `owner` until `until`. True when `owner` holds it now.
    pub async fn claim_lease(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.claim_lease(key, owner, now, until).await;
        }
        let (key, owner) = (key.to_string(), owner.to_string());
        self.with(Lane::General, move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO leases (key, owner, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET owner = ?2, expires_at = ?3 \
                     WHERE leases.owner = ?2 OR leases.expires_at <= ?4",
                )?
                .execute(params![key, owner, millis(until), millis(now)])?;
            Ok(n == 1)
        })
        .await
    }

    /// Give `key` up (only when `owner` holds it).
    pub async fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.release_lease(key, owner).await;
        }
        let (key, owner) = (key.to_string(), owner.to_string());
        self.with(Lane::General, move |c| {
            c.prepare_cached("DELETE FROM leases WHERE key = ?1 AND owner = ?2")?
                .execute(params![key, owner])?;
            Ok(())
        })
        .await
    }

    /// Give up every lease of `owner`: a restarted instance frees what its previous life held,
    /// so its own unfinished work resumes at once instead of after the leases expire.
    pub async fn release_leases_of(&self, owner: &str) -> Result<usize> {
        if let Some(pg) = self.pg() {
            return pg.release_leases_of(owner).await;
        }
        let owner = owner.to_string();
        self.with(Lane::General, move |c| {
            Ok(c.prepare_cached("DELETE FROM leases WHERE owner = ?1")?
                .execute([owner])?)
        })
        .await
    }

    /// The current holder of `key`, expired or not.
    pub async fn lease(&self, key: &str) -> Result<Option<Lease>> {
        if let Some(pg) = self.pg() {
            return pg.lease(key).await;
        }
        let key = key.to_string();
        self.with(Lane::General, move |c| {
            use rusqlite::OptionalExtension;
            let row: Option<(String, String, i64)> = c
                .prepare_cached("SELECT key, owner, expires_at FROM leases WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            row.map(|(key, owner, at)| {
                Ok(Lease {
                    key,
                    owner,
                    expires_at: super::from_millis(at)?,
                })
            })
            .transpose()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::each_backend;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    #[tokio::test]
    async fn a_held_lease_refuses_another_owner_until_it_expires() {
        each_backend(|s| async move {
            assert!(s.claim_lease("declare:1", "a", t(0), t(30)).await.unwrap());
            assert!(!s.claim_lease("declare:1", "b", t(10), t(40)).await.unwrap());
            assert_eq!(s.lease("declare:1").await.unwrap().unwrap().owner, "a");
            // The holder renews.
            assert!(s.claim_lease("declare:1", "a", t(20), t(50)).await.unwrap());
            assert!(!s.claim_lease("declare:1", "b", t(40), t(70)).await.unwrap());
            // a died and stopped renewing: b takes over after expiry.
            assert!(s.claim_lease("declare:1", "b", t(50), t(80)).await.unwrap());
            let l = s.lease("declare:1").await.unwrap().unwrap();
            assert_eq!((l.owner.as_str(), l.expires_at), ("b", t(80)));
            // a cannot release what b holds now.
            s.release_lease("declare:1", "a").await.unwrap();
            assert!(s.lease("declare:1").await.unwrap().is_some());
            s.release_lease("declare:1", "b").await.unwrap();
            assert!(s.lease("declare:1").await.unwrap().is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn a_restarted_owner_frees_its_previous_leases_at_once() {
        each_backend(|s| async move {
            assert!(s.claim_lease("page:1", "a", t(0), t(30)).await.unwrap());
            assert!(s.claim_lease("page:2", "a", t(0), t(30)).await.unwrap());
            assert!(s.claim_lease("page:3", "b", t(0), t(30)).await.unwrap());
            assert_eq!(s.release_leases_of("a").await.unwrap(), 2);
            assert!(s.claim_lease("page:1", "c", t(1), t(31)).await.unwrap());
            assert!(!s.claim_lease("page:3", "c", t(1), t(31)).await.unwrap());
        })
        .await;
    }
}
