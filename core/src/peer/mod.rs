//! The peer layer: one dnode connection over a SockJS [`Session`](crate::sockjs::Session),
//! the same on both ends (the side that accepted can call the side that dialed).
//!
//! A [`Connection`] owns its callback table (the functions it passed and the calls it
//! awaits; nothing is shared between connections), reads and answers messages, and hands
//! each incoming call up through the [`Dispatch`] trait to whoever serves methods (the
//! server layer). It knows nothing of methods, authentication or Kontrol.
//!
//! | module | what |
//! |---|---|
//! | `table` | the callback table: functions passed, calls awaited |
//! | `connection` | [`Connection`], [`PeerConfig`], [`Dispatch`], [`Incoming`], [`Reply`] |
//! | `call` | outgoing calls and their responses |
//! | `incoming` | splitting a received call, handing it up, sending the reply |
//! | `read` | the read loop and its limits |

mod call;
mod connection;
mod incoming;
mod read;
mod table;

pub use connection::{ArgsShape, Connection, Dispatch, Incoming, PeerConfig, Reply};
pub(crate) use read::call_options;
