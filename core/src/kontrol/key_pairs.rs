//! Kontrol's key pairs (current, add, delete, rotate) and what is signed with them: kite
//! keys, the outcome of a kite key presented at registration, tokens. Above `state`.

use super::config::RegisterResult;
use super::keys;
use super::state::Kontrol;
use super::storage::KiteRecord;
use crate::auth::{mint_kite_key, KeyPair};
use crate::Error;

impl Kontrol {
    /// The key pair new kite keys and tokens are signed with (the newest active one). Its
    /// public PEM is trimmed: that text is what kite keys carry as `kontrolKey` and what
    /// `getKey` answers (the reference trims key pairs when they are added, and Go kites
    /// compare Kontrol keys as text).
    pub async fn current_key(&self) -> Result<KeyPair, Error> {
        let mut pair = keys::current(&*self.inner.storage)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        pair.public_pem = pair.public_pem.trim().to_string();
        Ok(pair)
    }

    /// Adds a key pair; it becomes the current one.
    pub async fn add_key_pair(&self, pair: &KeyPair) -> Result<(), Error> {
        self.inner
            .storage
            .add_key(pair)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        self.inner.verifiers.forget_pairs();
        self.inner
            .kite
            .update_keys(|k| k.kontrol_key = pair.public_pem.clone());
        Ok(())
    }

    /// Deletes a key pair (softly: kites presenting it are re-signed when they register).
    pub async fn delete_key_pair(&self, id: &str) -> Result<(), Error> {
        self.inner
            .storage
            .delete_key(id)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        self.inner.verifiers.forget_pairs();
        let current = self.current_key().await?;
        self.inner
            .kite
            .update_keys(|k| k.kontrol_key = current.public_pem.clone());
        Ok(())
    }

    /// Generates a new pair, makes it current and deletes the previous current one.
    pub async fn rotate_key(&self) -> Result<KeyPair, Error> {
        let old = self.current_key().await?;
        let new = KeyPair::generate().map_err(|e| Error::Auth(e.to_string()))?;
        self.add_key_pair(&new).await?;
        self.delete_key_pair(&old.id).await?;
        Ok(new)
    }

    /// A kite key for `username`, signed with the current pair (what `--initial` and
    /// `registerMachine` hand out).
    pub async fn new_kite_key(&self, username: &str) -> Result<String, Error> {
        self.new_kite_key_for(username, &self.kontrol_url()).await
    }

    /// A kite key for `username` whose `kontrolURL` is `url` (Kontrol's public URL, when
    /// it differs from what this Kontrol knows of itself).
    pub async fn new_kite_key_for(&self, username: &str, url: &str) -> Result<String, Error> {
        let pair = self.current_key().await?;
        let issuer = self.inner.kite.identity().username.clone();
        mint_kite_key(&pair, &issuer, username, url).map_err(|e| Error::Auth(e.to_string()))
    }

    pub(super) fn kontrol_url(&self) -> String {
        let c = self.inner.kite.config();
        if !c.kontrol_url.is_empty() {
            return c.kontrol_url.clone();
        }
        self.inner
            .config
            .register_url
            .clone()
            .or_else(|| self.inner.kite.url())
            .unwrap_or_default()
    }

    /// Checks a kite key and works out the pair to record and what to hand back.
    pub(crate) async fn key_outcome(
        &self,
        jwt: &str,
    ) -> Result<(KeyPair, RegisterResult, String), String> {
        let checked = self
            .inner
            .verifiers
            .check_kite_key(&*self.inner.storage, jwt)
            .await?;
        let original = checked.claims.kontrol_key.trim().to_string();
        let mut result = RegisterResult::default();
        let pair = match checked.pair {
            Some(p) => p,
            None => {
                let current = self.current_key().await.map_err(|e| e.to_string())?;
                result.kite_key =
                    keys::resign(&checked.claims, &current).map_err(|e| e.to_string())?;
                current
            }
        };
        if original != pair.public_pem.trim() {
            result.public_key = pair.public_pem.trim().to_string();
        }
        Ok((pair, result, checked.claims.sub))
    }

    pub(super) async fn token_for(
        &self,
        record: &KiteRecord,
        audience: &str,
        username: &str,
        force: bool,
    ) -> anyhow::Result<String> {
        let pair = match self
            .inner
            .verifiers
            .pair_by_id(&*self.inner.storage, &record.key_id)
            .await
        {
            Ok(Some(p)) => p,
            // Deleted or unknown: sign with the current pair.
            Ok(None) => self.current_key().await?,
            Err(e) => return Err(self.inner.storage_err(e)),
        };
        let issuer = self.inner.kite.identity().username.clone();
        Ok(self
            .inner
            .tokens
            .get_or_mint(&pair, &issuer, username, audience, force)?)
    }
}
