//! The demonstration's school: the LAN the repository's `policy.yaml` describes (gateway
//! 10.0.0.1 and fd00::1, pupils on 10.10/16, pupils' own phones on the pupil Wi-Fi 10.11/16,
//! staff on 10.20/16, the ICT suite on 10.30/16, known by MAC), and that policy with its
//! state and console settings pointed at the demonstration's own directory.
//!
//! The policy's networks share one flat segment here (a /8); a real school would more often
//! put them on VLANs. What the agent decides depends on addresses and MACs, not on that.

use std::path::{Path, PathBuf};

use schoolgate_lab::{Host, Topology};

/// A device of the scripted day: the lab host it is, and how the story calls it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Device {
    pub(crate) host: Host,
    pub(crate) called: &'static str,
}

/// A pupil's laptop on the pupil network; the policy knows it only by its network.
pub(crate) const LAPTOP: Device = Device {
    host: Host {
        name: "laptop",
        ip: "10.10.4.21",
        ip6: "fd00:10::421",
        mac: "52:54:00:10:04:21",
    },
    called: "pupil's laptop",
};
/// The policy's `Y6-iPad-12` (owner 6B), by its MAC.
pub(crate) const IPAD: Device = Device {
    host: Host {
        name: "ipad",
        ip: "10.10.3.7",
        ip6: "fd00:10::307",
        mac: "52:54:00:aa:bb:cc",
    },
    called: "Y6-iPad-12 (6B)",
};
/// A pupil's own phone on the pupil Wi-Fi.
pub(crate) const PHONE: Device = Device {
    host: Host {
        name: "phone",
        ip: "10.11.0.40",
        ip6: "fd00:11::40",
        mac: "52:54:00:11:00:40",
    },
    called: "pupil's phone (Wi-Fi)",
};
/// The policy's `Head-Laptop`, by its MAC.
pub(crate) const STAFF: Device = Device {
    host: Host {
        name: "staff",
        ip: "10.20.0.5",
        ip6: "fd00:20::5",
        mac: "52:54:00:5a:00:01",
    },
    called: "Head-Laptop (staff)",
};
/// The policy's `ICT-Suite-01`, a school computer, by its MAC.
pub(crate) const ICT: Device = Device {
    host: Host {
        name: "ict",
        ip: "10.30.0.11",
        ip6: "fd00:30::11",
        mac: "52:54:00:12:34:56",
    },
    called: "ICT-Suite-01 (school)",
};

const HOSTS: [Host; 5] = [LAPTOP.host, IPAD.host, PHONE.host, STAFF.host, ICT.host];

/// The LAN of the repository's policy.
pub(crate) const TOPOLOGY: Topology = Topology {
    hosts: &HOSTS,
    gateway: "10.0.0.1",
    gateway6: "fd00::1",
    lan: "10.0.0.0/8",
    lan6: "fd00::/8",
};

/// The school's roster export, as the MIS writes it: the people the day's sign-ins name.
pub(crate) const ROSTER: &str = "Username,Preferred Forename,Legal Surname,Role,Year,Reg Group\n\
    amira.k,Amira,Khan,Pupil,6,6B\n\
    cara.m,Cara,Mensah,Pupil,5,5A\n\
    d.okafor,Dami,Okafor,Teacher,,\n";

/// Who signs in where before the first lesson, as the Wi-Fi controller and the ICT suite's
/// 802.1X report it over RADIUS; the phone and the iPad are used without a sign-in.
pub(crate) const SIGN_INS: [(Device, &str); 3] = [
    (LAPTOP, "amira.k"),
    (ICT, "SCHOOL\\cara.m"),
    (STAFF, "d.okafor"),
];

/// The RADIUS shared secret of the demonstration's controller (on the gateway's loopback).
pub(crate) const RADIUS_SECRET: &str = "demo-wlc-secret";
/// Where the agent takes RADIUS accounting, in the gateway's namespace.
pub(crate) const RADIUS_ON_GATEWAY: &str = "127.0.0.1:1813";

/// The "internet": the upstream resolver the policy names, and the rest of the lab's.
pub(crate) const RESOLVER: &str = schoolgate_lab::RESOLVER;
pub(crate) const VPN_SERVER: &str = schoolgate_lab::SITES[0];
pub(crate) const PROXY: &str = schoolgate_lab::SITES[3];

/// Where the agent reaches the console: the gateway's own loopback.
pub(crate) const CONSOLE_ON_GATEWAY: &str = "127.0.0.1:8443";

#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: expected exactly one `{key}` line in the `gateway:` section, found {found}",
        path.display()
    )]
    Key {
        path: PathBuf,
        key: &'static str,
        found: usize,
    },
}

/// The settings the demonstration replaces, each a whole line of the `gateway:` section.
const REPLACED: [&str; 2] = ["  state_dir:", "  console:"];

/// `policy` (the text of `source`) with `gateway.state_dir` and `gateway.console` pointed
/// into `dir`: the state in `dir/state`, the console at [`CONSOLE_ON_GATEWAY`] with the
/// token and certificate the lab's console helper writes there; and who is who: the roster
/// in `dir/roster.csv`, RADIUS accounting on [`RADIUS_ON_GATEWAY`] with the secret in
/// `dir/radius.secret`, and sessions that last the school day.
pub(crate) fn rewrite(source: &Path, policy: &str, dir: &Path) -> Result<String, PolicyError> {
    let replacements = [
        format!("  state_dir: {}", dir.join("state").display()),
        format!(
            "  console: {{ url: \"https://{CONSOLE_ON_GATEWAY}\", token_file: {}, ca_file: {}, name: gw1 }}",
            dir.join("agent.token").display(),
            dir.join("console.crt").display()
        ),
    ];
    let people = [
        format!("  roster: {}", dir.join("roster.csv").display()),
        format!(
            "  radius: {{ listen: [\"{RADIUS_ON_GATEWAY}\"], clients: [{{ address: 127.0.0.1, secret_file: {} }}] }}",
            dir.join("radius.secret").display()
        ),
        "  sessions: { idle_minutes: 720 }".to_owned(),
    ];
    let mut out = Vec::new();
    let mut found = [0usize; 2];
    let mut in_gateway = false;
    for line in policy.lines() {
        // A top-level key starts at the first column; comments and blank lines do not end a
        // section.
        if line.starts_with(|c: char| !c.is_whitespace() && c != '#') {
            in_gateway = line.starts_with("gateway:");
            if in_gateway {
                out.push(line.to_owned());
                out.extend(people.iter().cloned());
                continue;
            }
        }
        let replaced = REPLACED
            .iter()
            .zip(&replacements)
            .zip(&mut found)
            .find(|((key, _), _)| in_gateway && line.starts_with(**key));
        match replaced {
            Some(((_, new), n)) => {
                *n += 1;
                out.push(new.clone());
            }
            None => out.push(line.to_owned()),
        }
    }
    for (key, n) in REPLACED.iter().zip(found) {
        if n != 1 {
            return Err(PolicyError::Key {
                path: source.to_owned(),
                key: key.trim(),
                found: n,
            });
        }
    }
    out.push(String::new());
    Ok(out.join("\n"))
}

/// Writes the demonstration's policy into `dir`, with a copy of the `lists/` beside
/// `source` (the policy names its lists relative to itself); its path.
pub(crate) fn write_policy(source: &Path, dir: &Path) -> Result<PathBuf, PolicyError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| PolicyError::Read {
            path: path.to_owned(),
            source: e,
        })
    };
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| PolicyError::Write {
            path: path.to_owned(),
            source: e,
        })
    };
    let text = String::from_utf8_lossy(&read(source)?).into_owned();
    let lists = source.parent().unwrap_or(Path::new(".")).join("lists");
    let copy = dir.join("lists");
    std::fs::create_dir_all(&copy).map_err(|e| PolicyError::Write {
        path: copy.clone(),
        source: e,
    })?;
    let entries = std::fs::read_dir(&lists).map_err(|e| PolicyError::Read {
        path: lists.clone(),
        source: e,
    })?;
    for entry in entries.flatten() {
        let from = entry.path();
        if from.is_file() {
            write(&copy.join(entry.file_name()), &read(&from)?)?;
        }
    }
    write(&dir.join("roster.csv"), ROSTER.as_bytes())?;
    write(&dir.join("radius.secret"), RADIUS_SECRET.as_bytes())?;
    let policy = dir.join("policy.yaml");
    write(&policy, rewrite(source, &text, dir)?.as_bytes())?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: 1\nschool:\n  state_dir: elsewhere stays\ngateway:\n  lan_interfaces: [lan0]\n  # a comment\n  state_dir: /var/lib/schoolgate\n  console: { url: \"https://c:8443\", token_file: /etc/t }\nlater:\n  console: stays too\n";

    #[test]
    fn only_the_gateway_state_and_console_change() {
        let out = rewrite(Path::new("p.yaml"), POLICY, Path::new("/tmp/d")).unwrap();
        assert!(out.contains("  state_dir: elsewhere stays\n"), "{out}");
        assert!(out.contains("  console: stays too\n"), "{out}");
        assert!(out.contains("  lan_interfaces: [lan0]\n"), "{out}");
        assert!(out.contains("  state_dir: /tmp/d/state\n"), "{out}");
        assert!(out.contains("url: \"https://127.0.0.1:8443\", token_file: /tmp/d/agent.token, ca_file: /tmp/d/console.crt"), "{out}");
        assert!(
            !out.contains("/var/lib/schoolgate") && !out.contains("/etc/t"),
            "{out}"
        );
        assert!(
            out.contains(
                "gateway:\n  roster: /tmp/d/roster.csv\n  radius: { listen: [\"127.0.0.1:1813\"]"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_policy_without_the_keys_is_refused_by_name() {
        let err = rewrite(
            Path::new("p.yaml"),
            "version: 1\ngateway:\n  state_dir: x\n",
            Path::new("/d"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.yaml: expected exactly one `console:` line in the `gateway:` section, found 0"
        );
    }
}
