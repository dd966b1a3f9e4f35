//! A worker thread logs inside the span that was current where it was spawned, so the
//! log lines of routers that share one process name their router.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use engine_support::*;
use tracing_subscriber::fmt::MakeWriter;

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn worker_logs_in_spawner_span() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let Net { r1, .. } = Net::new();
    let stop = r1.stop_flag();
    let handle = tracing::info_span!("router", name = "r9").in_scope(|| r1.spawn().unwrap());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();

    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let started = output.lines().find(|line| line.contains("worker started"));
    let started = started.unwrap_or_else(|| panic!("no start line in:\n{output}"));
    assert!(started.contains("router{name=\"r9\"}"), "{started}");
}
