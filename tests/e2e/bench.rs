//! The benchmarks' peers really run: `bench fanout --peer janus` takes a small room through
//! Janus (Debian's package, started by the bench) and through roomtape, measured the same way.

use crate::support::Env;

#[test]
fn bench_fanout_runs_the_same_room_through_janus_and_roomtape() {
    assert!(
        std::path::Path::new("/usr/bin/janus").is_file(),
        "Janus is missing: `make peers` installs Debian's janus package"
    );
    let env = Env::new();
    let out = env.ok(&[
        "bench",
        "fanout",
        "--steps",
        "1x3",
        "--peer",
        "janus",
        "--seconds",
        "3",
        "--ramp",
        "false",
        "--compare",
        "false",
    ]);
    // Each SFU's row: label, then fwd pkt/s, fwd/core-s, dlv/core-s, cores, clients, loss%…
    let row = |name: &str| -> Vec<f64> {
        let line = out
            .lines()
            .find(|l| l.starts_with(name) && l.contains('%'))
            .unwrap_or_else(|| panic!("no {name} row in:\n{out}"));
        line[name.len()..]
            .split_whitespace()
            .filter_map(|f| f.trim_end_matches('%').parse().ok())
            .collect()
    };
    for name in ["roomtape ", "Janus "] {
        let r = row(name);
        assert!(r.len() >= 8, "{name} row: {r:?}\n{out}");
        // 1 speaker at 50 frames/s to 3 peers: about 150 packets a second delivered.
        assert!(r[0] > 100.0, "{name} forwarded {} pkt/s:\n{out}", r[0]);
        assert!(r[5] < 5.0, "{name} lost {}%:\n{out}", r[5]);
    }
    assert!(out.contains("roomtape / Janus"), "no ratio line:\n{out}");
}
