//! The serving side of a kite: the [`Kite`] with its configuration, method registry,
//! handlers, authentication and default methods, and the [`Request`] handlers receive.

pub mod addrs;
mod authn;
mod config;
mod defaults;
mod drain;
mod kite;
mod method;
pub(crate) mod options;
mod request;
mod routes;

pub(crate) use authn::authenticate;
pub use config::{kite_log_level, parse_duration, Config};
pub use defaults::SystemInfo;
pub(crate) use drain::closing_error;
pub use drain::shutdown_signal;
pub use kite::{AuthCheck, Authenticator, Kite, WeakKite};
pub use method::{argument_error, HandlerResult, MethodBuilder, MethodHandling};
pub use options::{Options, TimeUnit, TlsFiles};
pub use request::{ArgsShape, Request};
pub use routes::{HttpRequest, HttpResponse, MAX_ROUTE_BODY};
