//! The serving side of a kite: the [`Kite`] with its configuration, method table,
//! handlers, authentication and default methods, and the [`Request`] handlers receive.
//! It serves the calls of the peer layer's connections through [`crate::peer::Dispatch`].

pub mod addrs;
mod authn;
mod close;
mod config;
mod defaults;
mod dispatch;
mod drain;
mod kite;
mod listen;
mod method;
pub(crate) mod options;
mod request;
mod routes;
mod webrtc;

pub use authn::{AuthCheck, Authenticator, Keys};
pub use config::{kite_log_level, parse_duration, parse_switch, Config};
pub use defaults::SystemInfo;
pub use drain::shutdown_signal;
pub use kite::{Kite, WeakKite};
pub use method::{argument_error, HandlerResult, Method, MethodHandling};
pub use options::{Options, TimeUnit, TlsFiles};
pub use request::{ArgsShape, Request};
pub use routes::{HttpRequest, HttpResponse, MAX_ROUTE_BODY};
pub use webrtc::{DST_NOT_REGISTERED, DST_NOT_SET};
