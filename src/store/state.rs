//! Module state: small JSON values a module keeps across restarts (a
//! Telegram update offset, a Slack cursor). Not for secrets: those belong in
//! a login's `secret`.

use passerelle_api::ids::NetworkId;

use super::{Error, Result, Store};

impl Store {
    pub async fn state(&self, network: &NetworkId, key: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT value FROM module_state WHERE network = $1 AND state_key = $2",
        )
        .bind(network.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        text.map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Error::corrupt("module_state.value", e.to_string()))
        })
        .transpose()
    }

    /// Sets (or replaces) one value.
    pub async fn set_state(
        &self,
        network: &NetworkId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO module_state (network, state_key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (network, state_key) DO UPDATE SET value = excluded.value",
        )
        .bind(network.as_str())
        .bind(key)
        .bind(value.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
