//! SQLite storage, the embedded default (in progress).
