//! Simulation tests of the ESKM key exchange: convergence under loss, rejection of
//! forgeries and replays, key timing across rotations, restarts and algorithm changes.

use std::time::{Duration, Instant};

use svr_control::kex::sim::{Sim, SimConfig};
use svr_control::kex::{DhGroup, KexAlgorithm, MlKemLevel};

const DH2048: KexAlgorithm = KexAlgorithm::DiffieHellman(DhGroup::Modp2048);

#[test]
fn sim_two_routers_complete() {
    for alg in [
        DH2048,
        KexAlgorithm::MlKem(MlKemLevel::MlKem768),
        KexAlgorithm::Hybrid(DhGroup::Modp2048, MlKemLevel::MlKem768),
    ] {
        let mut sim = Sim::new(SimConfig::new(1, alg)).unwrap();
        let start = Instant::now();
        let done = sim.run_until_complete(Duration::from_secs(60));
        eprintln!("{alg}: {:?} virtual {:?} wall", done, start.elapsed());
        for i in 0..2 {
            eprintln!("{:?}", sim.engine(i).snapshot(svr_control::kex::PeerId(1 - i as u32)));
            eprintln!("{:?}", sim.engine(i).counters(svr_control::kex::PeerId(1 - i as u32)));
        }
        assert!(done.is_some(), "{alg} did not complete");
        assert!(sim.report.key_gaps.is_empty(), "{:?}", sim.report.key_gaps);
    }
}
