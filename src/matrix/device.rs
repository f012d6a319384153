//! [`DeviceApi`]: the client-server calls made as one device of the bot or
//! of a ghost (end-to-bridge encryption). The device is made and removed
//! with the appservice's token (MSC4190, `io.element.msc4190` in the
//! registration); the other calls name it with `?device_id=` (identity
//! assertion), so the homeserver files the keys under it. All name the
//! user (`?user_id=`), even the bot, the registration's own: Synapse 1.163
//! fails with a 500 on a `device_id` without a `user_id`.

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId};

use super::{
    MatrixClient, Result,
    client::{Request, encode},
};

/// One device of one of our users. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeviceApi {
    client: MatrixClient,
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
}

impl DeviceApi {
    pub fn new(client: MatrixClient, user_id: OwnedUserId, device_id: OwnedDeviceId) -> Self {
        Self {
            client,
            user_id,
            device_id,
        }
    }

    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    fn device_path(&self) -> String {
        format!(
            "/_matrix/client/v3/devices/{}",
            encode(self.device_id.as_str())
        )
    }

    /// `PUT /devices/{deviceId}`: creates the device (MSC4190) or renames it.
    pub async fn create(&self, display_name: &str) -> Result<()> {
        let request = Request::new(Method::PUT, "put_device", self.device_path())
            .json(json!({ "display_name": display_name }));
        self.client
            .execute(&request, Some(&self.user_id))
            .await
            .map(drop)
    }

    /// `DELETE /devices/{deviceId}` (no interactive auth under MSC4190),
    /// with its keys; a device that does not exist is no error.
    pub async fn delete(&self) -> Result<()> {
        let request =
            Request::new(Method::DELETE, "delete_device", self.device_path()).json(json!({}));
        match self.client.execute(&request, Some(&self.user_id)).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    /// A JSON call as this device; the answer's body, for the caller to
    /// parse into its response type. `endpoint` names it in metrics.
    pub async fn call(
        &self,
        method: Method,
        endpoint: &'static str,
        path: String,
        body: Option<Value>,
    ) -> Result<Bytes> {
        let mut request =
            Request::new(method, endpoint, path).query("device_id", self.device_id.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        Ok(self
            .client
            .execute(&request, Some(&self.user_id))
            .await?
            .body)
    }

    /// `PUT /sendToDevice/{eventType}/{txnId}` from this device.
    pub async fn send_to_device(&self, event_type: &str, txn_id: &str, body: Value) -> Result<()> {
        let path = format!(
            "/_matrix/client/v3/sendToDevice/{}/{}",
            encode(event_type),
            encode(txn_id)
        );
        self.call(Method::PUT, "send_to_device", path, Some(body))
            .await
            .map(drop)
    }
}
