//! Proxies for kites that cannot be dialed directly (behind NAT or a firewall), a layer
//! above [`client`](crate::client) and beside [`kontrol`](crate::kontrol):
//!
//! - [`ReverseProxy`]: the reference's `reverseproxy`: kites register their URL and get a
//!   public one whose websocket and XHR traffic the proxy forwards;
//! - [`TunnelProxy`]: the reference's `tunnelproxy`: a kite that only dials out keeps a
//!   connection to the proxy, which opens a tunnel through it (`kite.tunnel`) for every
//!   client of its public URL;
//! - the kite's side: [`Kite::register_to_proxy`](crate::Kite::register_to_proxy),
//!   [`Kite::register_to_tunnel`](crate::Kite::register_to_tunnel) and `KITE_PROXY_URL`.

mod forward;
mod register;
mod reverse;
mod table;
mod tunnel;

pub use register::{ProxyRegistration, METHOD_TUNNEL, PROXY_RETRY, TUNNEL_PROXY_NAME};
pub use reverse::{
    ReverseProxy, ReverseProxyConfig, METHOD_PROXY_REGISTER, REVERSE_PROXY_NAME,
    REVERSE_PROXY_VERSION,
};
pub use tunnel::{TunnelProxy, TunnelProxyConfig, TUNNEL_PROXY_VERSION};
