//! The lookup handlers: `getKites` (with its watch callback), `getToken` and `getKey`.
//! Above `key_pairs`; installed by `service`.

use std::collections::HashMap;

use futures_util::StreamExt;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::KiteWithToken;
use super::query::{self, Prepared};
use super::state::Kontrol;
use super::storage::{Event, KiteRecord};
use crate::dnode::Segment;
use crate::protocol::{Auth, KiteError, KiteQuery};
use crate::server::Request;

/// What `getKites` answers: `{"kites": [...]}`.
#[derive(Serialize)]
pub(super) struct GetKitesResult {
    kites: Vec<KiteWithToken>,
}

impl Kontrol {
    pub(super) async fn find(&self, prepared: &Prepared) -> anyhow::Result<Vec<KiteRecord>> {
        let mut kites = self
            .inner
            .storage
            .get(&prepared.exact)
            .await
            .map_err(|e| self.inner.storage_err(e))?;
        if prepared.constraint.is_some() {
            kites.retain(|r| prepared.matches(&r.kite));
        }
        Ok(kites)
    }

    pub(super) async fn get_kites(&self, req: Request) -> anyhow::Result<GetKitesResult> {
        #[derive(Deserialize)]
        struct Args {
            #[serde(default)]
            query: Option<KiteQuery>,
        }
        let args: Args = req.args().one()?;
        let watch = req
            .args()
            .function_at([Segment::from(0), Segment::from("watchCallback")]);
        let q = args
            .query
            .ok_or_else(|| KiteError::argument("missing query"))?;
        let prepared = query::prepare(&q).map_err(KiteError::argument)?;
        let audience = query::audience(&q);
        // Subscribe before reading so that no change between the two is missed.
        let events = match &watch {
            Some(_) => Some(
                self.inner
                    .storage
                    .watch()
                    .await
                    .map_err(|e| self.inner.storage_err(e))?,
            ),
            None => None,
        };
        let mut kites = self.find(&prepared).await?;
        kites.shuffle(&mut rand::rng());
        let mut out = Vec::with_capacity(kites.len());
        // Same audience and caller for every result: a token depends only on the kite's key
        // pair, which is looked up once per pair, not once per kite.
        let mut tokens: HashMap<String, String> = HashMap::new();
        for r in kites {
            let token = match tokens.get(&r.key_id) {
                Some(t) => t.clone(),
                None => {
                    let t = self.token_for(&r, &audience, req.username(), false).await?;
                    tokens.insert(r.key_id.clone(), t.clone());
                    t
                }
            };
            out.push(KiteWithToken {
                kite: r.kite,
                url: r.url,
                key_id: r.key_id,
                token,
            });
        }
        if let (Some(cb), Some(mut events)) = (watch, events) {
            let k = self.clone();
            let username = req.username().to_string();
            let req2 = req.clone();
            let watching = self.inner.metrics.as_ref().map(|m| m.watching());
            tokio::spawn(async move {
                let _watching = watching;
                loop {
                    let event = tokio::select! {
                        e = events.next() => match e { Some(e) => e, None => return },
                        _ = req2.cancelled() => return,
                    };
                    let payload = match event {
                        Event::Register(r) if prepared.matches(&r.kite) => {
                            let token = k
                                .token_for(&r, &audience, &username, false)
                                .await
                                .unwrap_or_default();
                            json!({"action": "REGISTER", "kite": r.kite, "url": r.url, "token": token})
                        }
                        Event::Deregister(kite) if prepared.matches(&kite) => {
                            json!({"action": "DEREGISTER", "kite": kite})
                        }
                        _ => continue,
                    };
                    if cb.call([payload]).await.is_err() {
                        return;
                    }
                }
            });
        }
        // Typed, so that the answer becomes JSON once (not a `Value` copied into another).
        Ok(GetKitesResult { kites: out })
    }

    pub(super) async fn get_token(&self, req: Request) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Args {
            #[serde(flatten)]
            query: KiteQuery,
            #[serde(default)]
            force: bool,
        }
        let args: Args = req
            .args()
            .one()
            .map_err(|e| KiteError::argument(format!("invalid query: {}", e.message)))?;
        let prepared = query::prepare(&args.query).map_err(KiteError::argument)?;
        let kites = self.find(&prepared).await?;
        let record = match kites.as_slice() {
            [] => return Err(anyhow::anyhow!("no kites found")),
            [one] => one,
            _ => return Err(anyhow::anyhow!("query matches more than one kite")),
        };
        self.token_for(
            record,
            &query::audience(&args.query),
            req.username(),
            args.force,
        )
        .await
    }

    pub(super) async fn get_key(&self, req: Request) -> anyhow::Result<String> {
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
        let checked = self
            .inner
            .verifiers
            .check_kite_key(&*self.inner.storage, &auth.key)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        // Trimmed, as kite keys carry it: a Go kite adopts the answer as its Kontrol key and
        // compares it as text with the `kontrolKey` of the kite keys it is shown.
        match checked.pair {
            Some(p) => Ok(p.public_pem.trim().to_string()),
            None => Ok(self.current_key().await?.public_pem),
        }
    }
}
