//! dnode, the message layer of kite: JSON messages whose arguments may contain functions
//! that are called back across the wire.
//!
//! IO-free: [`Message`] parses and writes frames; [`Callback`] and [`Function`] carry
//! functions in both directions; [`Arguments`] decodes received arguments. The connection
//! that sends and receives lives in the server/client layers.

mod functions;
mod message;

pub use functions::{
    place, scrub, Arguments, BoxFuture, Callback, Function, FunctionSink, PLACEHOLDER,
};
pub use message::{value_at_mut, Message, MessageError, Method, Path, Segment};
pub(crate) use message::{Borrowed, LazyMessage};
