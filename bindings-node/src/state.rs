//! What a `Kite` object holds ([`State`], shared with a `Kontrol` running on the kite) and
//! what the kite and Kontrol classes do with it alike: listen, adopt clients, close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;

use crate::bridge::Bridge;
use crate::client::{Client, ClientOptions, ClientShared};
use crate::errors;
use crate::jsfn::Keepalive;

/// What a `Kite` object holds (shared with a `Kontrol` running on it).
pub(crate) struct State {
    pub(crate) kite: kite::Kite,
    pub(crate) bridge: Arc<Bridge>,
    pub(crate) owner: u64,
    pub(crate) closed: AtomicBool,
    pub(crate) keepalive: Mutex<Option<Keepalive>>,
    /// The state itself while the kite listens: like a listening `net.Server`, a listening
    /// kite lives (and keeps Node running) until closed, even once its JavaScript object is
    /// garbage collected. `close_state` breaks this cycle.
    pub(crate) listening: Mutex<Option<Arc<State>>>,
    pub(crate) clients: Mutex<Vec<Weak<ClientShared>>>,
}

/// Serves with `serve` (the kite's or Kontrol's `listen`) on `port` and `host`; the kite then
/// keeps Node running until closed.
pub(crate) fn listen_with<'e, S, F>(
    env: &'e Env,
    s: &Arc<State>,
    port: Option<u32>,
    host: Option<String>,
    serve: S,
) -> napi::Result<PromiseRaw<'e, u32>>
where
    S: FnOnce(String, u16) -> F,
    F: std::future::Future<Output = Result<std::net::SocketAddr, kite::Error>> + Send + 'static,
{
    // The configuration is fixed: another address is passed to the listen call itself.
    let port = match port {
        Some(p) => u16::try_from(p).map_err(|_| {
            errors::throw_error(
                env,
                &kite::Error::Config(format!("port {p} is out of range")),
            )
        })?,
        None => s.kite.config().port,
    };
    let host = host.unwrap_or_else(|| s.kite.config().ip.clone());
    let serve = serve(host, port);
    let keepalive = Keepalive::new(env)?;
    let s = s.clone();
    errors::promise(env, serve, move |_env, addr| {
        if !s.closed.load(Ordering::SeqCst) {
            *s.keepalive.lock().unwrap_or_else(|e| e.into_inner()) = Some(keepalive);
            *s.listening.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
        }
        Ok(u32::from(addr.port()))
    })
}

/// The `Client` object of a core client of kite `s` (closed with the kite).
pub(crate) fn adopt_client(
    env: &Env,
    s: &State,
    client: kite::Client,
    options: Option<ClientOptions>,
) -> napi::Result<Client> {
    let c = Client::create(env, client, s.bridge.clone(), options)?;
    let mut clients = s.clients.lock().unwrap_or_else(|e| e.into_inner());
    clients.retain(|w| w.strong_count() > 0);
    clients.push(c.downgrade());
    Ok(c)
}

/// Closes a kite: the core kite, its clients, and what kept Node running for it.
pub(crate) fn close_state(env: &Env, s: &State) {
    let _ = s.bridge.flush(env);
    s.closed.store(true, Ordering::SeqCst);
    s.kite.close();
    let clients = std::mem::take(&mut *s.clients.lock().unwrap_or_else(|e| e.into_inner()));
    for c in clients.iter().filter_map(Weak::upgrade) {
        c.close();
    }
    s.keepalive.lock().unwrap_or_else(|e| e.into_inner()).take();
    let me = s.listening.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(me);
}
