//! Every blocked name a pupil's device was answered reaches the console once, whatever the
//! gateway goes through while it answers: the agent killed with SIGKILL at random moments,
//! its disk filled (so writes fail, some of them half-way, and small segments roll just
//! after) with one kill while it is full, then freed. Counted end to end: the names the device saw answered against the
//! events the console stored, and every name missing must be covered by a loss the agent
//! reported with its count.
//!
//! The agent's state directory is a 4 MiB tmpfs mounted in a mount namespace of the test's
//! own (held by a sleeping process), so filling it touches nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use schoolgate_tests::lab::{GATEWAY, Lab, PUPIL, eventually, workspace_bin};
use schoolgate_tests::{console, require_lab};

const CONSOLE: &str = "127.0.0.1:18443";
/// Names in the stream, and how many the device asks each second.
const NAMES: usize = 3200;
const RATE: u32 = 80;
/// Kills while the stream runs (at least 5).
const KILLS: usize = 6;

/// A small deterministic generator, seeded from the clock (printed, to replay a failure).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The agents, each started in the disk's mount namespace, killed and started again.
struct Agents {
    policy: PathBuf,
    disk_holder: u32,
    started: usize,
}

impl Agents {
    fn current(&self) -> String {
        format!("agent{}", self.started)
    }

    /// Starts the next agent, and waits until it answers DNS.
    fn start(&mut self, lab: &mut Lab) {
        self.started += 1;
        let label = self.current();
        let holder = self.disk_holder.to_string();
        let agent = workspace_bin("schoolgate-agent");
        lab.spawn(
            "gw",
            &label,
            &[
                "nsenter",
                "-t",
                &holder,
                "-m",
                "--",
                agent.to_str().unwrap(),
                "run",
                "--policy",
                self.policy.to_str().unwrap(),
                "--journal-segment-bytes",
                "16384",
            ],
        );
        assert!(
            eventually(15, || lab
                .log(&label)
                .contains("sending events to the console")),
            "{label}: {}",
            lab.log(&label)
        );
    }

    fn kill(&mut self, lab: &mut Lab) {
        let label = self.current();
        lab.signal(&label, "KILL");
        // Killed by a signal: no exit code to see.
        lab.wait(&label, Duration::from_secs(5));
    }
}

/// Fills the file system holding `dir` until a write fails; the file that did it.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x55u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    // What is left is less than a page: take it byte by byte.
    while f.write_all(&chunk[..1]).is_ok() {}
    path
}

#[test]
fn answered_blocked_names_survive_kills_and_a_full_disk_or_are_reported_lost() {
    require_lab!();
    let mut lab = Lab::up();
    console::prepare(&lab, &["127.0.0.1"]);
    console::start(&mut lab, "console", CONSOLE);

    // The disk: a tmpfs in a mount namespace of its own, held open by a sleeping process.
    let mount = lab.path("disk");
    std::fs::create_dir_all(&mount).unwrap();
    lab.spawn_with_own_mounts(
        "gw",
        "disk",
        &format!(
            "mount -t tmpfs -o size=4m tmpfs {} && echo mounted && exec sleep 3600",
            mount.display()
        ),
    );
    assert!(
        eventually(5, || lab.log("disk").contains("mounted")),
        "{}",
        lab.log("disk")
    );
    let holder = lab.pid("disk");
    // The same directory as the holder's namespace sees it.
    let disk = PathBuf::from(format!("/proc/{holder}/root")).join(mount.strip_prefix("/").unwrap());
    let policy_file = lab.path("policy.yaml");
    std::fs::write(
        &policy_file,
        console::agent_policy(&lab, CONSOLE, &mount.join("state")),
    )
    .unwrap();

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut random = Random(seed);
    let mut agents = Agents {
        policy: policy_file,
        disk_holder: holder,
        started: 0,
    };
    agents.start(&mut lab);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dns_stream.py");
    lab.spawn(
        PUPIL.name,
        "stream",
        &[
            "python3",
            script.to_str().unwrap(),
            GATEWAY,
            "s",
            &NAMES.to_string(),
            &RATE.to_string(),
        ],
    );
    let began = Instant::now();

    // Kills at random moments; between the third and the fourth, the disk fills for a while
    // and is freed.
    let mut full = (0.0, 0.0);
    for k in 0..KILLS {
        std::thread::sleep(random.millis(600, 2500));
        if k == 3 {
            // The disk fills; an agent is killed and another starts while it is full (what
            // the first had counted lost must not be forgotten); then it is freed.
            let filler = fill(&disk);
            full.0 = unix_now();
            std::thread::sleep(random.millis(800, 2000));
            agents.kill(&mut lab);
            agents.start(&mut lab);
            std::thread::sleep(random.millis(800, 2000));
            std::fs::remove_file(&filler).unwrap();
            full.1 = unix_now();
            std::thread::sleep(random.millis(0, 1500));
        }
        agents.kill(&mut lab);
        agents.start(&mut lab);
    }
    let streamed = began.elapsed();
    assert!(
        lab.wait("stream", Duration::from_secs(120)).is_some(),
        "the stream did not end"
    );
    assert!(
        streamed < Duration::from_secs_f64(NAMES as f64 / f64::from(RATE)),
        "every kill came while the stream ran ({streamed:?})"
    );

    // The names the device saw answered NXDOMAIN (blocked), and when.
    let answered: BTreeMap<String, f64> = lab
        .log("stream")
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let (time, name, rcode) = (parts.next()?, parts.next()?, parts.next()?);
            (rcode == "3").then(|| (name.to_owned(), time.parse().unwrap()))
        })
        .collect();
    assert!(
        answered.len() > NAMES / 2,
        "only {} answered: {}",
        answered.len(),
        lab.log("stream")
    );

    // What the console stores, once the last agent has sent it all.
    let stored = || -> BTreeMap<String, (u64, u64)> {
        console::query(
            &lab,
            "SELECT name, COUNT(*), SUM(count) FROM events \
             WHERE agent = 'gw1' AND kind = 'blocked' GROUP BY name",
        )
        .iter()
        .map(|row| {
            let cols: Vec<&str> = row.split('|').collect();
            (
                cols[0].to_owned(),
                (cols[1].parse().unwrap(), cols[2].parse().unwrap()),
            )
        })
        .collect()
    };
    let reported = || -> u64 {
        console::query(
            &lab,
            "SELECT COALESCE(SUM(count), 0) FROM events \
             WHERE agent = 'gw1' AND kind IN ('events_dropped', 'journal_damaged')",
        )[0]
        .parse()
        .unwrap()
    };
    let missing = |stored: &BTreeMap<String, (u64, u64)>| -> Vec<(String, f64)> {
        answered
            .iter()
            .filter(|(n, _)| !stored.contains_key(*n))
            .map(|(n, t)| (n.clone(), *t))
            .collect()
    };
    assert!(
        eventually(60, || missing(&stored()).len() as u64 <= reported()),
        "{} answered names missing at the console, {} reported lost; last agent: {}",
        missing(&stored()).len(),
        reported(),
        lab.log(&agents.current())
    );
    // Settle: what is still on its way arrives.
    std::thread::sleep(Duration::from_secs(3));
    let stored = stored();
    let missing = missing(&stored);
    let reported = reported();

    // Nothing twice: each name was asked once, so it is one event of count 1.
    let twice: Vec<_> = stored
        .iter()
        .filter(|(_, (rows, count))| *rows != 1 || *count != 1)
        .collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let asked: BTreeSet<String> = (0..NAMES).map(|i| format!("s{i}.instagram.com")).collect();
    assert!(stored.keys().all(|n| asked.contains(n)));
    // Every name missing was lost to the full disk, and the loss was reported with a count
    // at least as large.
    assert!(missing.len() as u64 <= reported);
    let outside: Vec<_> = missing
        .iter()
        .filter(|(_, t)| *t < full.0 - 0.5 || *t > full.1 + 0.5)
        .collect();
    assert!(
        outside.is_empty(),
        "lost while the disk had room ({:.3}..{:.3}): {outside:?}",
        full.0,
        full.1
    );
    assert!(
        reported > 0,
        "the full disk cost nothing: the test did not test it"
    );
    let logs: String = (1..=agents.started)
        .map(|i| lab.log(&format!("agent{i}")))
        .collect();
    assert!(
        logs.contains("cannot write events"),
        "no write failed while the disk was full"
    );
    eprintln!(
        "{} names answered blocked; {} stored once each; {} missing, all while the disk was \
         full, {} reported lost; {} kills; {} events stored in all",
        answered.len(),
        stored.len(),
        missing.len(),
        reported,
        agents.started - 1,
        console::query(&lab, "SELECT COUNT(*) FROM events WHERE agent = 'gw1'")[0]
    );
}
