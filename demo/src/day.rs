//! The scripted school day: Tuesday 24 November 2026, a term day in the repository's
//! policy, with the Year 6 media lesson's YouTube exception from 13:00 to 14:00. Each scene
//! restarts the agent with its clock set to the scene's time (`run --clock-from`), so one
//! run shows the morning, the lessons, lunch and the afternoon in a few minutes.
//!
//! Before the first scene's steps, pupils and staff sign in as the school's Wi-Fi controller
//! reports it (RADIUS accounting, sent by FreeRADIUS's radclient on the gateway); the agent
//! keeps the sessions across its restarts, so every alert of the day names the person.
//!
//! Every step is done from a device's own namespace with real tools (`curl`, `kdig`,
//! OpenVPN) and judged by what the device got back; `schoolgate-agent explain` then says
//! why, in the policy's words. A step that does not go as the policy says is reported and,
//! under `--check`, fails the run.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use schoolgate_lab::{Lab, console, eventually, workspace_bin};

use crate::dsl::Session;

use crate::school::{
    Device, ICT, IPAD, LAPTOP, PHONE, PROXY, RADIUS_ON_GATEWAY, RADIUS_SECRET, RESOLVER, SIGN_INS,
    STAFF, VPN_SERVER,
};

/// The day, in the policy's time zone (Europe/London, on GMT in November).
pub(crate) const DATE: &str = "2026-11-24";

/// What a device should get, by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The site itself answers.
    Reached,
    /// The gateway's block page answers instead.
    Blocked,
}

/// One thing a device does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    /// Opens `http://NAME/` in a browser.
    Visit(&'static str, Expect),
    /// A DNS-over-HTTPS app with its resolver's address built in (`kdig +https`, server name
    /// `dns.google`): the school's resolver never sees the question.
    DnsOverHttps,
    /// An OpenVPN client to a server on the internet.
    Vpn,
    /// HTTPS through a web proxy on the internet (HTTP CONNECT).
    Proxy,
    /// The DSL releases the device in the console, from its alert of this technique.
    Release(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) who: Device,
    pub(crate) action: Action,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Scene {
    /// Local time, `HH:MM`.
    pub(crate) at: &'static str,
    pub(crate) title: &'static str,
    pub(crate) steps: &'static [Step],
}

const fn act(who: Device, action: Action) -> Step {
    Step { who, action }
}

const fn visit(who: Device, site: &'static str, expect: Expect) -> Step {
    Step {
        who,
        action: Action::Visit(site, expect),
    }
}

use Expect::{Blocked, Reached};

/// The day, scene by scene.
pub(crate) const SCENES: [Scene; 6] = [
    Scene {
        at: "08:40",
        title: "Before the register: ordinary browsing",
        steps: &[
            visit(LAPTOP, "www.dbprimary.com", Reached),
            visit(LAPTOP, "www.bbc.co.uk", Reached),
            visit(PHONE, "www.bbc.co.uk", Reached),
            visit(STAFF, "www.gov.uk", Reached),
        ],
    },
    Scene {
        at: "09:15",
        title: "First lesson",
        steps: &[
            visit(LAPTOP, "www.instagram.com", Blocked),
            visit(ICT, "www.tiktok.com", Blocked),
            visit(STAFF, "www.facebook.com", Blocked),
            act(LAPTOP, Action::DnsOverHttps),
            visit(LAPTOP, "www.bbc.co.uk", Blocked),
            visit(LAPTOP, "www.dbprimary.com", Reached),
        ],
    },
    Scene {
        at: "10:30",
        title: "Break: the DSL speaks to the pupil and releases the laptop in the console",
        steps: &[
            act(LAPTOP, Action::Release("dns_over_https")),
            visit(LAPTOP, "www.bbc.co.uk", Reached),
        ],
    },
    Scene {
        at: "12:15",
        title: "Lunch",
        steps: &[
            visit(STAFF, "www.facebook.com", Reached),
            visit(PHONE, "www.instagram.com", Blocked),
            act(LAPTOP, Action::Vpn),
            act(PHONE, Action::Proxy),
            visit(ICT, "www.facebook.com", Blocked),
        ],
    },
    Scene {
        at: "13:05",
        title: "Year 6 media lesson: YouTube by a teacher's exception",
        steps: &[
            visit(IPAD, "www.youtube.com", Reached),
            visit(ICT, "www.youtube.com", Blocked),
            visit(LAPTOP, "www.youtube.com", Blocked),
            visit(STAFF, "www.facebook.com", Blocked),
        ],
    },
    Scene {
        at: "15:45",
        title: "After school",
        steps: &[
            visit(IPAD, "www.instagram.com", Reached),
            visit(ICT, "www.instagram.com", Blocked),
            visit(STAFF, "www.facebook.com", Reached),
        ],
    },
];

/// How the day went: each step that did not go as the policy says, in words.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) failures: Vec<String>,
}

/// Ctrl-C (or SIGTERM) arrived during the day.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub(crate) struct Interrupted;

/// Plays the day on `lab`, the agent running `policy`; the agent of the last scene is left
/// running. `stop` is checked between steps.
pub(crate) fn play(
    lab: &mut Lab,
    policy: &Path,
    dsl: &Session,
    stop: &AtomicBool,
) -> Result<Outcome, Interrupted> {
    let mut outcome = Outcome::default();
    let mut running: Option<String> = None;
    let mut signed_in = false;
    for scene in SCENES {
        if stop.load(Ordering::Relaxed) {
            return Err(Interrupted);
        }
        if let Some(previous) = running.take() {
            // Stopping an agent sends on what it was still gathering (repeated blocks).
            lab.stop_cleanly(&previous);
        }
        let label = format!("agent-{}", scene.at.replace(':', ""));
        let clock = format!("{DATE}T{}:00Z", scene.at);
        lab.spawn_agent(&label, policy, &["--clock-from", &clock]);
        running = Some(label.clone());
        println!();
        println!("{}  {}", scene.at, scene.title);
        let ready = eventually(20, || lab.log(&label).contains("inspecting"));
        if !ready {
            outcome.failures.push(format!(
                "{}: the agent did not start: {}",
                scene.at,
                lab.log(&label)
            ));
            continue;
        }
        if !signed_in {
            signed_in = true;
            outcome.failures.extend(sign_in(lab));
        }
        for step in scene.steps {
            if stop.load(Ordering::Relaxed) {
                return Err(Interrupted);
            }
            if let Err(failure) = perform(lab, policy, dsl, &scene, step) {
                println!("       ✗ {failure}");
                outcome
                    .failures
                    .push(format!("{} {}: {failure}", scene.at, step.who.called));
            }
        }
    }
    Ok(outcome)
}

/// Signs in [`SIGN_INS`] as a Wi-Fi controller would (RADIUS Accounting-Start with the
/// device's address and MAC); a failure for each sign-in the agent did not answer.
fn sign_in(lab: &Lab) -> Vec<String> {
    let mut failures = Vec::new();
    for (device, user) in SIGN_INS {
        // radclient reads `\\` in a quoted string as one backslash.
        let request = format!(
            "Acct-Status-Type = Start\nUser-Name = \"{}\"\nFramed-IP-Address = {}\n\
             Calling-Station-Id = \"{}\"\nNAS-Identifier = \"wlc1\"\n",
            user.replace('\\', "\\\\"),
            device.host.ip,
            device.host.mac.replace(':', "-"),
        );
        let script = format!(
            "printf '%s' '{request}' | radclient -D /usr/share/freeradius -r 2 -t 2 -x {RADIUS_ON_GATEWAY} acct {RADIUS_SECRET}"
        );
        let out = lab.exec("gw", &["sh", "-c", &script]);
        let answered = out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("Accounting-Response");
        if answered {
            println!("       ✓ {user} signed in on the {}", device.called);
        } else {
            println!("       ✗ {user}'s sign-in was not answered");
            failures.push(format!(
                "{user}'s sign-in on the {} was not answered: {}",
                device.called,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    failures
}

/// What a browser on the device got from `http://SITE/`.
fn browse(lab: &Lab, who: Device, site: &str) -> Option<Expect> {
    let out = lab.exec(
        who.host.name,
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://{site}/"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    match code {
        "200" if body.starts_with("fake site ") => Some(Reached),
        "403" => Some(Blocked),
        _ => None,
    }
}

/// `schoolgate-agent explain`'s sentence for the device and site at the scene's time.
fn why(lab: &Lab, policy: &Path, scene: &Scene, who: Device, site: &str) -> String {
    let at = format!("{DATE}T{}", scene.at);
    let mut args = vec![
        "explain",
        "--client",
        who.host.ip,
        "--mac",
        who.host.mac,
        "--domain",
        site,
        "--at",
        &at,
    ];
    if lab.quarantined(who.host.ip) {
        args.push("--quarantined");
    }
    let out = Command::new(workspace_bin("schoolgate-agent"))
        .args(&args)
        .arg("--policy")
        .arg(policy)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Err(e) => format!("explain could not run: {e}"),
    }
}

fn perform(
    lab: &mut Lab,
    policy: &Path,
    dsl: &Session,
    scene: &Scene,
    step: &Step,
) -> Result<(), String> {
    let who = step.who;
    match step.action {
        Action::Visit(site, expect) => {
            let got = browse(lab, who, site);
            let said = match got {
                Some(Reached) => "opens",
                Some(Blocked) => "gets the block page",
                None => "gets no answer",
            };
            println!("  {:<22} {site:<20} {said}", who.called);
            println!("       {}", why(lab, policy, scene, who, site));
            if got == Some(expect) {
                Ok(())
            } else {
                Err(format!("{site}: expected {expect:?}, got {got:?}"))
            }
        }
        Action::DnsOverHttps => {
            let started = Instant::now();
            println!(
                "  {:<22} tries DNS over HTTPS: an app with dns.google's address built in ({RESOLVER}:443)",
                who.called
            );
            let _ = lab.exec(
                who.host.name,
                &[
                    "kdig",
                    "+https",
                    "+tls-sni=dns.google",
                    "+time=2",
                    "+retry=0",
                    &format!("@{RESOLVER}"),
                    "www.instagram.com",
                    "A",
                ],
            );
            reported(lab, who, "dns_over_https", started)
        }
        Action::Vpn => {
            let started = Instant::now();
            println!("  {:<22} starts OpenVPN to {VPN_SERVER}:1194", who.called);
            let client = schoolgate_lab::vpn::client(lab, VPN_SERVER);
            let client: Vec<&str> = client.iter().map(String::as_str).collect();
            let label = format!("vpn-{}", who.host.name);
            lab.spawn(who.host.name, &label, &client);
            let result = reported(lab, who, "openvpn", started);
            lab.signal(&label, "KILL");
            result
        }
        Action::Proxy => {
            let started = Instant::now();
            println!(
                "  {:<22} tries a web proxy: HTTPS through {PROXY}:8888",
                who.called
            );
            let _ = lab.exec(
                who.host.name,
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "3",
                    "-x",
                    &format!("http://{PROXY}:8888"),
                    "https://www.bbc.co.uk/",
                ],
            );
            reported(lab, who, "http_proxy", started)
        }
        Action::Release(technique) => {
            println!(
                "  DSL                    releases the {} in the console",
                who.called
            );
            let alerts = dsl.alerts().map_err(|e| e.to_string())?;
            let alert = alerts
                .iter()
                .find(|a| {
                    a.technique.split(',').any(|t| t == technique) && a.device_ip == who.host.ip
                })
                .ok_or_else(|| format!("no {technique} alert to release the device from"))?;
            let started = Instant::now();
            dsl.release(
                &alert.id,
                "Spoke to the pupil with their teacher; the DoH app is removed",
            )
            .map_err(|e| e.to_string())?;
            if !eventually(30, || !lab.quarantined(who.host.ip)) {
                return Err("the gateway did not release the device within 30 s".into());
            }
            println!(
                "       the gateway let it go {:.1} s later; the release is in the incident's history",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// Waits for the console to hold an alert of `technique` from the device, then says so and
/// whether the device is in quarantine.
fn reported(lab: &Lab, who: Device, technique: &str, started: Instant) -> Result<(), String> {
    // Built from constants only: the technique and the device's address are the script's.
    let sql = format!(
        "SELECT count(*) FROM events WHERE kind = 'bypass_attempt' AND technique = '{technique}' \
         AND device_ip = '{}'",
        who.host.ip
    );
    let arrived = eventually(30, || {
        console::query(lab, &sql).first().is_some_and(|n| n != "0")
    });
    if !arrived {
        return Err(format!(
            "no {technique} alert reached the console within 30 s"
        ));
    }
    let quarantined = eventually(5, || lab.quarantined(who.host.ip));
    println!(
        "       the gateway saw it: alert `{technique}` at the console {:.1} s after the attempt began{}",
        started.elapsed().as_secs_f64(),
        if quarantined {
            "; the device is quarantined (only the VLE answers it)"
        } else {
            ""
        }
    );
    if quarantined {
        Ok(())
    } else {
        Err(format!("{technique}: the device was not quarantined"))
    }
}
