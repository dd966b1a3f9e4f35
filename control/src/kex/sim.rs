//! Deterministic network simulation of ESKM engines.
