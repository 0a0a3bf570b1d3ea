//! dnode, the message layer of kite: JSON messages whose arguments may contain functions
//! that are called back across the wire.
//!
//! IO-free: [`Message`] parses and writes frames. Functions never hide inside JSON values:
//! outgoing ones are [`Callback`]s at explicit paths of a [`Payload`]; received ones are
//! [`Function`]s at explicit paths of [`Arguments`], bound to the connection they came from.
//! The connection that sends and receives is the layer above ([`crate::peer`]).

mod functions;
mod message;
mod payload;
mod stack;

pub use functions::{Arguments, BoxFuture, Callback, Function, FunctionSink};
pub use message::{value_at_mut, Message, MessageError, Method, Path, Segment, FAST_DEPTH};
pub(crate) use message::{Borrowed, LazyMessage};
pub use payload::{IntoPayload, Payload, PLACEHOLDER};
pub use stack::{on_big_stack, BIG_STACK};

/// Deepest nesting of a message accepted (the reference's `encoding/json` limit).
pub use crate::protocol::json::MAX_DEPTH;
