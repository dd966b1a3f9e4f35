//! Alarm table.
