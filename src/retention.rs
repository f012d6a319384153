//! The retention purge: message-map rows older than
//! `privacy.message_retention` are deleted on a schedule; and disappearing
//! messages, checked every `privacy.disappear_interval`.

use std::sync::Arc;

use crate::bridge::Bridge;

/// Runs the purge now and then every `privacy.purge_interval` until shutdown.
pub fn spawn_purge(bridge: Arc<Bridge>) {
    let guard = bridge.task_guard();
    let mut stop = bridge.shutdown.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let mut interval = tokio::time::interval(bridge.config.privacy.purge_interval);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if let Err(e) = bridge.purge_expired().await {
                        tracing::warn!(error = %e, "retention purge failed; will retry at the next interval");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    });
}

/// Runs [`Bridge::disappear_due`] every `privacy.disappear_interval` until
/// shutdown.
pub fn spawn_disappear(bridge: Arc<Bridge>) {
    let guard = bridge.task_guard();
    let mut stop = bridge.shutdown.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let mut interval = tokio::time::interval(bridge.config.privacy.disappear_interval);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if let Err(e) = bridge.disappear_due().await {
                        tracing::warn!(error = %e, "disappearing messages failed; will retry");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    });
}
