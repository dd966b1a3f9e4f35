//! AF_XDP legs.
use std::time::Duration;

use crate::forward::{Options, Row};

pub fn forward_legs(_options: &Options, _run_time: Duration, _runs: usize) -> Result<Vec<Row>, String> {
    Err("not yet".into())
}
