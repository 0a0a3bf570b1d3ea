//! The registry's dnode handlers: `register`, `unregister` and `registerMachine`. Above
//! `key_pairs` and `heartbeats`; installed by `service`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::config::{heartbeat_secs, RegisterResult};
use super::state::Kontrol;
use super::storage::KiteRecord;
use crate::dnode::{Callback, Payload};
use crate::protocol::{Auth, KiteError};
use crate::server::Request;

impl Kontrol {
    pub(super) async fn register(&self, req: Request) -> anyhow::Result<RegisterResult> {
        let auth = req.auth().cloned().unwrap_or(Auth {
            kind: String::new(),
            key: String::new(),
        });
        if auth.kind != Auth::KITE_KEY {
            return Err(anyhow::anyhow!(
                "Unexpected authentication type: {}",
                auth.kind
            ));
        }
        #[derive(Deserialize)]
        struct Args {
            #[serde(default)]
            url: String,
        }
        let args: Args = req.args().one()?;
        check_url(&args.url)?;
        let (pair, mut result, username) = self
            .key_outcome(&auth.key)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut kite = req.caller().clone();
        kite.username = username;
        kite.validate().map_err(|e| anyhow::anyhow!(e))?;
        let record = KiteRecord {
            kite: kite.clone(),
            url: args.url.clone(),
            key_id: pair.id.clone(),
        };
        self.inner
            .storage
            .upsert(&record)
            .await
            .map_err(|e| self.inner.storage_err(e))?;
        let alive = self.watch_heartbeats(&record, &auth.key);
        let beat = Callback::new(move |_| alive.notify_one());
        let interval = heartbeat_secs(&self.inner.config);
        let client = req.client().clone();
        let name = kite.to_string();
        tokio::spawn(async move {
            if let Err(e) = client
                .call(
                    crate::protocol::METHOD_HEARTBEAT,
                    Payload::list().arg(interval).callback(beat),
                    Some(Duration::from_secs(4)),
                )
                .await
            {
                tracing::warn!(kite = %name, error = %e, "could not start heartbeats");
            }
        });
        tracing::info!(kite = %kite, url = %args.url, "kite registered");
        result.url = args.url;
        Ok(result)
    }

    /// `unregister`: removes the caller's record at once (watchers see `DEREGISTER`). Only
    /// the kite that registered it may: the same kite id, registered on this Kontrol with
    /// the same kite key.
    pub(super) async fn unregister(&self, req: Request) -> anyhow::Result<serde_json::Value> {
        let key = match req.auth() {
            Some(a) if a.kind == Auth::KITE_KEY => a.key.clone(),
            other => {
                return Err(KiteError::authentication(format!(
                    "Unexpected authentication type: {}",
                    other.map(|a| a.kind.as_str()).unwrap_or_default()
                ))
                .into())
            }
        };
        let id = req.caller().id.clone();
        let record = {
            let mut regs = self
                .inner
                .registrations
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match regs.get(&id) {
                Some(r) if r.key == key => regs.remove(&id).map(|r| r.record),
                Some(_) => {
                    return Err(KiteError::authentication(
                        "only the kite that registered a record may unregister it",
                    )
                    .into())
                }
                None => None,
            }
        };
        let Some(record) = record else {
            return Err(KiteError::generic(format!("kite {id:?} is not registered here")).into());
        };
        self.inner
            .storage
            .delete(&record.kite)
            .await
            .map_err(|e| self.inner.storage_err(e))?;
        tracing::info!(kite = %record.kite, "kite unregistered");
        Ok(json!({ "url": record.url }))
    }

    pub(super) async fn register_machine(&self, req: Request) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Args {
            #[serde(rename = "authType", alias = "AuthType", default)]
            auth_type: String,
        }
        let args: Args = req.args().one().unwrap_or(Args {
            auth_type: String::new(),
        });
        let Some(check) = self.inner.config.machine_check.clone() else {
            return Err(anyhow::anyhow!(
                "cannot authenticate user: registerMachine is disabled on this Kontrol"
            ));
        };
        check(args.auth_type, req.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot authenticate user: {e}"))?;
        let username = req.caller().username.clone();
        if username.is_empty() {
            return Err(anyhow::anyhow!("cannot authenticate user: no username"));
        }
        tracing::info!(%username, "registered machine");
        Ok(self.new_kite_key(&username).await?)
    }
}

fn check_url(u: &str) -> Result<(), KiteError> {
    super::register_url::check_register_url(u).map_err(KiteError::generic)
}
