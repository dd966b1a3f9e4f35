//! Replay windows.
