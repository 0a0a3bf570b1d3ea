//! dnode, the message layer of kite: JSON messages whose arguments may contain functions
//! that are called back across the wire.
//!
//! IO-free: [`Message`] parses and writes frames; [`Callback`] and [`Function`] carry
//! functions in both directions; [`Arguments`] decodes received arguments. The connection
//! that sends and receives lives in the server/client layers.

mod functions;
mod message;
mod stack;

pub use functions::{
    place, scrub, Arguments, BoxFuture, Callback, Function, FunctionSink, PLACEHOLDER,
};
pub use message::{value_at_mut, Message, MessageError, Method, Path, Segment, FAST_DEPTH};
pub(crate) use message::{Borrowed, LazyMessage};
pub use stack::{on_big_stack, BIG_STACK};

/// Deepest nesting of a message accepted (the reference's `encoding/json` limit).
pub use crate::protocol::json::MAX_DEPTH;
