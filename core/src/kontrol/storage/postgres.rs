//! PostgreSQL storage (in progress).
