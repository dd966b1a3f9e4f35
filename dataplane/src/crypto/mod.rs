//! Per-packet crypto.
