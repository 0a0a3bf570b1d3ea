//! etcd v3 storage (in progress).
