//! Calling other kites: a [`Client`] dials a kite's URL (once, with a timeout, or forever
//! with exponential backoff and reconnection) and makes calls over the resulting
//! [`Connection`].
//!
//! | module | what |
//! |---|---|
//! | `dialer` | the TLS configuration and HTTP client a kite's dials share |
//! | `handle` | [`Client`]: its state, settings and events |
//! | `dial` | dialing, redialing, waiting for a connection |
//! | `call` | [`Client::call`] and its [`Call`] future |

mod call;
mod dial;
mod dialer;
mod handle;

pub use crate::peer::Connection;
pub use call::Call;
pub(crate) use dialer::dialer;
pub use handle::{Client, WeakClient};
