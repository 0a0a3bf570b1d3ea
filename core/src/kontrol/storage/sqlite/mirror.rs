//! The in-memory copy of the SQLite `kite` table that answers lookups (see the `sqlite`
//! module docs): below `sqlite`, which keeps it in step with every committed write.

use std::collections::{BTreeMap, HashMap};

use crate::kontrol::storage::KiteRecord;
use crate::protocol::{Kite, KiteQuery};

/// Kite rows in memory, ordered by the query fields so that a query (a prefix of them set,
/// see [`crate::kontrol::query`]) is one range scan.
#[derive(Default)]
pub(super) struct Mirror {
    /// [`Kite::values`] order → (URL, key pair id).
    by_fields: BTreeMap<[String; 7], (String, String)>,
    /// Kite id → its fields.
    by_id: HashMap<String, [String; 7]>,
}

impl Mirror {
    pub(super) fn put(&mut self, record: &KiteRecord) {
        let fields = record.kite.values().map(str::to_string);
        if let Some(old) = self.by_id.insert(record.kite.id.clone(), fields.clone()) {
            self.by_fields.remove(&old);
        }
        self.by_fields
            .insert(fields, (record.url.clone(), record.key_id.clone()));
    }

    pub(super) fn remove(&mut self, id: &str) {
        if let Some(fields) = self.by_id.remove(id) {
            self.by_fields.remove(&fields);
        }
    }

    pub(super) fn record(fields: &[String; 7], (url, key_id): &(String, String)) -> KiteRecord {
        let [username, environment, name, version, region, hostname, id] = fields.clone();
        KiteRecord {
            kite: Kite {
                username,
                environment,
                name,
                version,
                region,
                hostname,
                id,
            },
            url: url.clone(),
            key_id: key_id.clone(),
        }
    }

    /// Rows whose fields equal every non-empty field of `query`: the range of the leading
    /// set fields, filtered by any set after a gap.
    pub(super) fn get(&self, query: &KiteQuery) -> Vec<KiteRecord> {
        let wanted = query.values();
        let prefix = wanted.iter().take_while(|v| !v.is_empty()).count();
        // The empty string sorts first, so this is the first key with that prefix.
        let mut from: [String; 7] = Default::default();
        for (slot, value) in from.iter_mut().zip(&wanted[..prefix]) {
            *slot = (*value).to_string();
        }
        self.by_fields
            .range(from..)
            .take_while(|(fields, _)| fields.iter().zip(&wanted[..prefix]).all(|(f, w)| f == w))
            .filter(|(fields, _)| {
                fields
                    .iter()
                    .zip(&wanted)
                    .all(|(f, w)| w.is_empty() || f == w)
            })
            .map(|(fields, row)| Mirror::record(fields, row))
            .collect()
    }

    pub(super) fn get_by_id(&self, id: &str) -> Option<KiteRecord> {
        let fields = self.by_id.get(id)?;
        let row = self.by_fields.get(fields)?;
        Some(Mirror::record(fields, row))
    }
}
