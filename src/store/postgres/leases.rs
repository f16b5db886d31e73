//! Leases on PostgreSQL: one conditional upsert per claim, atomic under the row lock, so two
//! replicas claiming at once cannot both win. Same semantics as `store/leases.rs`.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::Pg;
use crate::store::{from_millis, millis, Lease};

impl Pg {
    pub async fn claim_lease(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO leases (key, owner, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET owner = $2, expires_at = $3 \
                 WHERE leases.owner = $2 OR leases.expires_at <= $4",
            )
            .await?;
        let n = c
            .execute(&stmt, &[&key, &owner, &millis(until), &millis(now)])
            .await?;
        Ok(n == 1)
    }

    /// Whether `owner` holds `key` at `now` (fencing: checked before recording work done).
    pub async fn holds_lease(&self, key: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT 1 FROM leases WHERE key = $1 AND owner = $2 AND expires_at > $3",
            )
            .await?;
        Ok(c.query_opt(&stmt, &[&key, &owner, &millis(now)])
            .await?
            .is_some())
    }

    pub async fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM leases WHERE key = $1 AND owner = $2",
            &[&key, &owner],
        )
        .await?;
        Ok(())
    }

    pub async fn release_leases_of(&self, owner: &str) -> Result<usize> {
        let c = self.client().await?;
        Ok(c.execute("DELETE FROM leases WHERE owner = $1", &[&owner])
            .await? as usize)
    }

    pub async fn lease(&self, key: &str) -> Result<Option<Lease>> {
        let c = self.client().await?;
        c.query_opt(
            "SELECT key, owner, expires_at FROM leases WHERE key = $1",
            &[&key],
        )
        .await?
        .map(|r| {
            Ok(Lease {
                key: r.try_get(0)?,
                owner: r.try_get(1)?,
                expires_at: from_millis(r.try_get(2)?)?,
            })
        })
        .transpose()
    }
}
