//! Memory per session, lookup cost by table size, and session set-up rate.
//!
//! Memory comes from the counting global allocator ([`crate::alloc_count`]): the heap a
//! table of N slots takes when made, and what filling it with N sessions adds. Sessions
//! are built as the ingress engine builds them (the same seven metadata TLVs, fresh
//! payload keys), with distinct LAN and waypoint 5-tuples. A lookup is the engine's LAN
//! lookup plus a read of the session it finds, over keys in random order. The keys are laid
//! out in lookup order before the runs and read in turn, as a receive ring presents packet
//! headers, so that reading a key costs the same at every table size. Lookups are timed
//! one at a time (`SessionTable::find_lan`) and in bursts of [`LOOKUP_BURST`] keys
//! (`SessionTable::find_lan_burst`, the batched lookup the engine runs on each received
//! burst). Both take the same keys in the same order, and the two paths and the table
//! sizes take turns run by run. Lookups are timed in thread CPU time. Set-up rate is
//! measured end to end: the first packet of each new flow through r1 (new ingress session,
//! payload key, metadata) and r2 (metadata opened, egress session).

use std::hint::black_box;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};
use rand::seq::SliceRandom;
use serde::Serialize;
use svr_dataplane::crypto::{PayloadKeyTlv, PayloadSecret, SessionKeys};
use svr_dataplane::forward::FiveTuple;
use svr_dataplane::io::mem::{MemConfig, mem_pair};
use svr_dataplane::packet::{PayloadKeyBlob, PayloadTlv};
use svr_dataplane::replay::ReplayWindow;
use svr_dataplane::session::{
    LOOKUP_BURST, PayloadKeys, Role, SESSION_SUITE, Session, SessionMetadata, SessionTable,
};

use crate::alloc_count;
use crate::generator::{Generator, SizeMix};
use crate::pipeline::{Pipeline, Wiring, boxed};
use crate::receiver::Receiver;
use crate::stats::Summary;
use crate::topology::{FORWARD, Router, router_worker};

#[derive(clap::Args)]
pub struct Options {
    /// Table sizes to measure lookups at, in sessions.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Lookups per timed run.
    #[arg(long, value_parser = crate::at_least_one::<usize>, default_value_t = 2_000_000)]
    pub lookups: usize,
    /// Timed runs per size and lookup path; the report gives their median and spread.
    #[arg(long, value_parser = crate::at_least_one::<usize>, default_value_t = 5)]
    pub runs: usize,
    /// New flows sent through the two routers for the set-up rate.
    #[arg(long, value_parser = crate::at_least_one::<u16>, default_value_t = 20_000)]
    pub setup_flows: u16,
    /// Fewer lookups and runs, for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Output path of the JSON results.
    #[arg(long, default_value = "target/bench/sessions.json")]
    pub json: PathBuf,
    /// Output path of the Markdown table.
    #[arg(long, default_value = "target/bench/sessions.md")]
    pub markdown: PathBuf,
}

/// Bytes per session, by part.
#[derive(Debug, Serialize)]
pub struct Breakdown {
    /// `size_of::<Session>()`, stored inline in its slot.
    pub session_entry: usize,
    /// Of the entry: the payload keys (expanded AES key and HMAC states).
    pub key_material: usize,
    /// Of the entry: the replay window.
    pub replay_window: usize,
    /// Of the entry: the LAN and waypoint 5-tuples.
    pub tuples: usize,
    /// A slot of the table's slab, `size_of::<Option<Session>>()`.
    pub slot: usize,
    /// Heap each session owns outside its slot: the metadata TLVs it resends.
    pub metadata_heap: f64,
    /// Heap of the empty table per slot beyond the slot itself: the two 5-tuple indexes
    /// and the free list.
    pub index_overhead: f64,
    /// Everything the full table takes on the heap, per session.
    pub total: f64,
}

#[derive(Debug, Serialize)]
pub struct SizeRow {
    pub sessions: usize,
    pub bytes_per_session: f64,
    /// Thread CPU time per lookup, one key at a time.
    pub lookup_ns: Summary,
    /// Thread CPU time per lookup, in bursts of [`LOOKUP_BURST`] keys.
    pub burst_lookup_ns: Summary,
    pub fill_seconds: f64,
    /// Heap allocations made by the `insert` calls that filled the table.
    pub insert_allocations: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// One-minute load average before and after the runs.
    pub load_average: (f64, f64),
    pub breakdown: Breakdown,
    pub sizes: Vec<SizeRow>,
    /// Lookup time at the largest size over the time at the size before it, one key at a
    /// time.
    pub lookup_ratio: f64,
    /// The same ratio for lookups in bursts.
    pub burst_lookup_ratio: f64,
    /// New sessions per second through both routers on one core.
    pub setup_per_second: Summary,
}

pub fn run(options: &Options) -> Result<(), String> {
    let core = crate::pin_to_last_core();
    eprintln!("{}", crate::pinning(core));
    let load_before = crate::load_average();
    let (lookups, runs) =
        if options.quick { (200_000, 2) } else { (options.lookups, options.runs) };

    if options.sizes.contains(&0) {
        return Err("invalid table size 0 in --sizes: expected at least 1 session".into());
    }
    let mut filled = Vec::new();
    for &count in &options.sizes {
        filled.push(fill_table(count, lookups)?);
    }

    // The sizes take turns run by run, so that a change in the load of the machine falls
    // on every size alike and spares the ratios.
    let mut samples = vec![(Vec::new(), Vec::new()); filled.len()];
    for _ in 0..runs {
        for (table, (single, burst)) in filled.iter().zip(&mut samples) {
            single.push(time_lookups(&table.table, &table.keys)?);
            burst.push(time_burst_lookups(&table.table, &table.keys)?);
        }
    }

    let mut sizes = Vec::new();
    for (table, (single, burst)) in filled.iter().zip(&samples) {
        let row = SizeRow {
            sessions: table.table.len(),
            bytes_per_session: table.breakdown.total,
            lookup_ns: Summary::of(single),
            burst_lookup_ns: Summary::of(burst),
            fill_seconds: table.fill_seconds,
            insert_allocations: table.insert_allocations,
        };
        eprintln!(
            "{:>8} sessions  {:>7.0} B/session  lookup {:>6.1} ns, in bursts {:>6.1} ns  \
             (filled in {:.1} s)",
            row.sessions,
            row.bytes_per_session,
            row.lookup_ns.median,
            row.burst_lookup_ns.median,
            row.fill_seconds
        );
        sizes.push(row);
    }
    let breakdown = filled.pop().map(|table| table.breakdown).ok_or("no table size given")?;
    drop(filled);
    let ratio = |time: fn(&SizeRow) -> f64| match sizes.as_slice() {
        [.., before, last] => time(last) / time(before),
        _ => 1.0,
    };
    let lookup_ratio = ratio(|row| row.lookup_ns.median);
    let burst_lookup_ratio = ratio(|row| row.burst_lookup_ns.median);

    let flows = if options.quick { options.setup_flows.min(4000) } else { options.setup_flows };
    let setup: Vec<f64> =
        (0..runs).map(|_| setup_rate(flows)).collect::<Result<Vec<_>, String>>()?;
    let report = Report {
        load_average: (load_before, crate::load_average()),
        breakdown,
        sizes,
        lookup_ratio,
        burst_lookup_ratio,
        setup_per_second: Summary::of(&setup),
    };
    eprintln!("set-up {:.0} sessions/s", report.setup_per_second.median);

    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)?;
    let markdown = markdown(&report);
    crate::write_file(&options.markdown, &markdown)?;
    println!("{markdown}");
    Ok(())
}

/// A full table and what the lookups in it need.
struct FilledTable {
    table: SessionTable,
    /// LAN tuples of the sessions, in the random order they are looked up.
    keys: Vec<FiveTuple>,
    breakdown: Breakdown,
    fill_seconds: f64,
    insert_allocations: u64,
}

/// Fills a table of `count` sessions, measures its memory, and draws the keys of `lookups`
/// lookups in it in random order.
fn fill_table(count: usize, lookups: usize) -> Result<FilledTable, String> {
    let before = alloc_count::live_bytes();
    let mut table = SessionTable::new(count, 0, 1, 0);
    let empty = alloc_count::live_bytes() - before;

    let started = Instant::now();
    let mut tuples = Vec::with_capacity(count);
    let mut metadata_heap = 0u64;
    let mut insert_allocations = 0u64;
    let route = bench_route();
    for index in 0..count {
        let heap_before = alloc_count::live_bytes();
        let session = bench_session(index, &route)?;
        metadata_heap += alloc_count::live_bytes() - heap_before;
        tuples.push(session.lan_key());
        let allocations_before = alloc_count::allocations();
        table.insert(session).map_err(|e| format!("session {index}: {e}"))?;
        insert_allocations += alloc_count::allocations() - allocations_before;
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    // The tuple list is the benchmark's own; leave it out of the table's bytes.
    let tuples_heap = (tuples.capacity() * size_of::<FiveTuple>()) as u64;
    let full = alloc_count::live_bytes() - before - tuples_heap;

    let mut order: Vec<usize> = (0..lookups).map(|i| i % count).collect();
    order.shuffle(&mut rand::rng());
    let keys = order.into_iter().map(|index| tuples[index]).collect();

    let slot = size_of::<Option<Session>>();
    let breakdown = Breakdown {
        session_entry: size_of::<Session>(),
        key_material: size_of::<PayloadKeys>(),
        replay_window: size_of::<ReplayWindow>(),
        tuples: 2 * size_of::<FiveTuple>(),
        slot,
        metadata_heap: metadata_heap as f64 / count as f64,
        index_overhead: empty as f64 / count as f64 - slot as f64,
        total: full as f64 / count as f64,
    };
    Ok(FilledTable { table, keys, breakdown, fill_seconds, insert_allocations })
}

/// Looks up `keys` one at a time, and reads the session each finds. Returns nanoseconds per
/// lookup.
fn time_lookups(table: &SessionTable, keys: &[FiveTuple]) -> Result<f64, String> {
    let start = thread_cpu_time()?;
    let mut found = 0u64;
    for key in keys {
        if let Some(id) = table.find_lan(key)
            && let Some(session) = table.get(id)
        {
            found += black_box(session.sent) + 1;
        }
    }
    let elapsed = thread_cpu_time()?.saturating_sub(start);
    per_lookup(elapsed, found, keys.len())
}

/// Looks up `keys` in bursts of [`LOOKUP_BURST`], and reads the session each finds once its
/// burst is looked up. Returns nanoseconds per lookup.
fn time_burst_lookups(table: &SessionTable, keys: &[FiveTuple]) -> Result<f64, String> {
    let mut ids = [None; LOOKUP_BURST];
    let start = thread_cpu_time()?;
    let mut found = 0u64;
    for burst in keys.chunks(LOOKUP_BURST) {
        let ids = &mut ids[..burst.len()];
        table.find_lan_burst(burst, ids);
        for session in ids.iter().filter_map(|id| table.get((*id)?)) {
            found += black_box(session.sent) + 1;
        }
    }
    let elapsed = thread_cpu_time()?.saturating_sub(start);
    per_lookup(elapsed, found, keys.len())
}

/// Returns the CPU time this thread has used. Lookups are timed by it and not by the wall
/// clock, because on a busy machine the wall clock also counts the time other processes
/// run on this core.
fn thread_cpu_time() -> Result<Duration, String> {
    let time = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_err(|error| format!("failed to read the thread CPU clock: {error}"))?;
    Ok(Duration::from(time))
}

/// Nanoseconds per lookup, once every lookup found its session (`found` counts at least one
/// per hit).
fn per_lookup(elapsed: Duration, found: u64, lookups: usize) -> Result<f64, String> {
    if found < lookups as u64 {
        return Err(format!("only {found} of {lookups} lookups found their session"));
    }
    Ok(elapsed.as_nanos() as f64 / lookups as f64)
}

/// The route TLVs every benchmark session shares, as the engine builds them for one
/// tenant and service.
fn bench_route() -> Arc<[PayloadTlv]> {
    vec![
        PayloadTlv::Tenant("lab".into()),
        PayloadTlv::Service("bench".into()),
        PayloadTlv::SourceRouter("r1".into()),
        PayloadTlv::SessionEncrypted,
    ]
    .into()
}

/// Builds ingress session number `index`, with the engine's metadata and distinct tuples.
fn bench_session(index: usize, route: &Arc<[PayloadTlv]>) -> Result<Session, String> {
    let host = Ipv4Addr::from(0x0ae6_0000u32 + (index as u32 % 60_000) + 256);
    let source_port = 1024 + (index / 60_000) as u16;
    let original = FiveTuple {
        source: host.into(),
        destination: IpAddr::V4(crate::topology::HOST5),
        source_port,
        destination_port: 5201,
        protocol: 17,
    };
    // Waypoint ports repeat every 24 575 sessions, so the peer address varies with them.
    let pair = index % 24_575;
    let peer = Ipv4Addr::from(0x0ae7_0100u32 + (index / 24_575) as u32);
    let local_port = 16_384 + 2 * pair as u16;
    let waypoints = FiveTuple {
        source: IpAddr::V4(crate::topology::R1_WAYPOINT),
        destination: peer.into(),
        source_port: local_port,
        destination_port: local_port + 1,
        protocol: 17,
    };

    let tlv = PayloadKeyTlv {
        suite: SESSION_SUITE,
        key_id: 0,
        secret: PayloadSecret::generate().map_err(|e| e.to_string())?,
    };
    let blob = PayloadKeyBlob::new(tlv.emit().to_vec()).map_err(|e| e.to_string())?;
    let uuid = uuid::Uuid::new_v4();
    let metadata =
        SessionMetadata { route: Some(Arc::clone(route)), last: PayloadTlv::PayloadKey(blob) };
    let keys: SessionKeys = tlv.session_keys();

    Ok(Session {
        role: Role::Ingress,
        uuid,
        original,
        waypoints,
        peer: 0,
        path: Some(0),
        wan_interface: 1,
        lan_interface: 0,
        service: 0,
        tenant: 0,
        encrypt: true,
        keys: PayloadKeys::new(keys),
        sent: 0,
        window: ReplayWindow::new(),
        send_metadata: true,
        metadata,
        last_seen: Instant::now(),
        idle_timeout: Duration::from_secs(600),
        relay: None,
    })
}

/// Sends the first packet of `flows` new flows through r1 and r2; returns sessions set up
/// per second (both routers, one core).
fn setup_rate(flows: u16) -> Result<f64, String> {
    let config = MemConfig { frames: 8192, frame_size: 2048, ring_size: 4096 };
    let pair = || mem_pair(&config).map_err(|e| e.to_string());
    let (host1, r1_lan) = pair()?;
    let (r1_wan, r2_wan) = pair()?;
    let (r2_lan, host5) = pair()?;
    let sessions = usize::from(flows) + 16;
    let mut pipeline = Pipeline {
        r1: router_worker(Router::Ingress, boxed(r1_lan), boxed(r1_wan), sessions),
        r2: router_worker(Router::Egress, boxed(r2_lan), boxed(r2_wan), sessions),
        wiring: Wiring::Paired { host1, host5 },
    };
    let mut generator = Generator::new(&FORWARD, flows, SizeMix::Fixed(64));
    let mut sink = Receiver::new(flows);

    let start = Instant::now();
    let delivered = pipeline.first_packets(&mut generator, &mut sink, usize::from(flows));
    let elapsed = start.elapsed();
    let created = pipeline.r2.worker.engine().counters().sessions_created;
    if delivered != u64::from(flows) || created != u64::from(flows) {
        return Err(format!(
            "set-up run delivered {delivered} and created {created} of {flows} sessions"
        ));
    }
    Ok(f64::from(flows) / elapsed.as_secs_f64())
}

fn markdown(report: &Report) -> String {
    let b = &report.breakdown;
    let mut out = String::new();
    out.push_str("| part | bytes per session |\n| --- | ---: |\n");
    out.push_str(&format!("| session entry (`size_of::<Session>()`) | {} |\n", b.session_entry));
    out.push_str(&format!("| of which payload keys | {} |\n", b.key_material));
    out.push_str(&format!("| of which replay window | {} |\n", b.replay_window));
    out.push_str(&format!("| of which LAN and waypoint 5-tuples | {} |\n", b.tuples));
    out.push_str(&format!("| slab slot (`Option<Session>`) | {} |\n", b.slot));
    out.push_str(&format!("| metadata TLVs on the heap | {:.0} |\n", b.metadata_heap));
    out.push_str(&format!("| indexes and free list | {:.0} |\n", b.index_overhead));
    out.push_str(&format!("| **total, measured** | **{:.0}** |\n\n", b.total));

    out.push_str(&format!(
        "| sessions | bytes/session | lookup ns, one at a time | lookup ns, bursts of {LOOKUP_BURST} \
         | allocations in insert | fill s |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    ));
    for row in &report.sizes {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {:.1} |\n",
            row.sessions,
            row.bytes_per_session,
            spread(&row.lookup_ns),
            spread(&row.burst_lookup_ns),
            row.insert_allocations,
            row.fill_seconds
        ));
    }
    let setup = &report.setup_per_second;
    out.push_str(&format!(
        "\nLookup at the largest size over the one before it: {:.2} one at a time, {:.2} in \
         bursts. Set-up through both routers: {:.0} sessions/s ({:.0}-{:.0}).\n",
        report.lookup_ratio, report.burst_lookup_ratio, setup.median, setup.min, setup.max
    ));
    out
}

/// Formats a median with its range: `median (min-max)`.
fn spread(summary: &Summary) -> String {
    format!("{:.1} ({:.1}-{:.1})", summary.median, summary.min, summary.max)
}
