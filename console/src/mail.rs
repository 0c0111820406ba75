//! E-mail to the safeguarding lead when a high-risk incident starts (or an incident becomes
//! high-risk): checked every [`TICK`], so it is mailed within a minute of reaching the
//! console, once. The message says what kind of incident it is, when (in the school's time
//! zone), and where to open it — no pupil's name, device, address or site, since e-mail is
//! read on phones and passes through other servers. An incident is marked mailed only once
//! the server has taken the message; a failed send is tried again at the next tick.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::{info, warn};

use schoolgate_contract::Kind;

use crate::config::{Smtp, SmtpSecurity};
use crate::db::Db;
use crate::db::incidents::Incident;
use crate::zone::Zone;

/// How often the console looks for alerts to mail.
pub const TICK: Duration = Duration::from_secs(15);
/// Alerts listed in one message at most; the rest are counted.
const LISTED: usize = 20;
/// Alerts taken per message at most (the rest go in the next).
const PER_MESSAGE: i64 = 500;

/// The mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    #[error("smtp.{field}: {value:?} is not an e-mail address: {source}")]
    Address {
        field: &'static str,
        value: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("cannot build the message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("cannot read the records for the message: {0}")]
    Report(#[source] crate::db::DbError),
}

/// What incident `i` is, without who, where or which site (e-mail is read on phones and
/// passes through other servers): "an attempt to get round the filter with a VPN app; the
/// device was put in quarantine".
pub fn summary(i: &Incident) -> String {
    if let Some(rule) = &i.rule {
        // The rule's name is IT's words in `console.yaml`, not a pupil's.
        return format!("a threshold was crossed: {rule}");
    }
    let words: Vec<&str> = i.techniques.iter().map(|t| t.words()).collect();
    let what = match words.as_slice() {
        [] => match i.kind {
            Kind::Quarantined => "a device put in quarantine".to_owned(),
            Kind::EventsDropped => "a gateway lost events before the console had them".to_owned(),
            Kind::JournalDamaged => "damage in a gateway's event journal".to_owned(),
            Kind::PolicyRejected => "an edit to the filtering policy was refused".to_owned(),
            Kind::DirectoryRejected => "the list of pupils and staff could not be read".to_owned(),
            Kind::FeedRejected => "a blocklist could not be refreshed".to_owned(),
            other => format!("a {} alert", other.as_str().replace('_', " ")),
        },
        [one] => format!("an attempt to get round the filter with {one}"),
        [rest @ .., last] => format!(
            "attempts to get round the filter with {} and {last}",
            rest.join(", ")
        ),
    };
    if i.quarantined && !words.is_empty() {
        format!("{what}; the device was put in quarantine")
    } else {
        what
    }
}

/// The subject and body of the message for `incidents`, times in `zone`.
pub fn compose(incidents: &[Incident], public_url: Option<&str>, zone: &Zone) -> (String, String) {
    compose_for(None, incidents, public_url, zone)
}

/// The message for `incidents`, for `school`'s lead when it names one (its name in the
/// subject: a lead of several schools' sees which).
pub fn compose_for(
    school: Option<&str>,
    incidents: &[Incident],
    public_url: Option<&str>,
    zone: &Zone,
) -> (String, String) {
    let n = incidents.len();
    let whose = school.map_or_else(String::new, |s| format!(" at {s}"));
    let subject = if n == 1 {
        format!("schoolgate: 1 new high-risk incident{whose}")
    } else {
        format!("schoolgate: {n} new high-risk incidents{whose}")
    };
    let base = public_url.map(|u| u.trim_end_matches('/'));
    let mut body = String::from(
        "New incidents need the safeguarding lead's attention. Open them in the console; \
         the detail is kept there, not in e-mail.\n\n",
    );
    for i in incidents.iter().take(LISTED) {
        body.push_str(&format!(
            "- {}  {}  (gateway {})\n",
            zone.minute(i.first_ms),
            summary(i),
            i.agent
        ));
        if let Some(base) = base {
            body.push_str(&format!("  {base}/alerts/{}\n", i.id));
        }
    }
    if n > LISTED {
        body.push_str(&format!("\n…and {} more.\n", n - LISTED));
    }
    if let Some(base) = base {
        body.push_str(&format!("\nAll new incidents: {base}/alerts?status=new\n"));
    }
    (subject, body)
}

/// A weekly report e-mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The safeguarding lead's weekly summary: the weekly report with outcomes.
    Weekly,
    /// The governors' version: sums only.
    Governors,
}

impl Report {
    /// Its name where it is recorded as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weekly => "weekly",
            Self::Governors => "governors",
        }
    }

    /// Whose copy of the weekly report it is: outcomes only in the DSL's.
    fn role(self) -> crate::auth::Role {
        match self {
            Self::Weekly => crate::auth::Role::Dsl,
            Self::Governors => crate::auth::Role::It,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Weekly => "weekly summary",
            Self::Governors => "weekly report for governors",
        }
    }
}

/// The message for `report` of the week `[from_ms, to_ms)` with `sections` (names no pupil,
/// device or site: sums only, as the weekly report page).
pub fn compose_report(
    report: Report,
    sections: &crate::web::reports::Sections,
    (from_ms, to_ms): (i64, i64),
    zone: &Zone,
    public_url: Option<&str>,
) -> (String, String) {
    let from = zone.date_of(from_ms);
    let to = zone.date_of(zone.add_days(to_ms, -1));
    let subject = format!("schoolgate: {}, {from} to {to}", report.title());
    let mut body = format!(
        "The {} of what the school's gateways recorded, Monday {from} to Sunday {to} \
         ({} time). Sums only: no pupil, device or site is named.\n",
        report.title(),
        zone.name()
    );
    for (title, rows) in sections {
        body.push_str(&format!("\n{title}\n"));
        if rows.is_empty() {
            body.push_str("  none\n");
        }
        for (k, n) in rows {
            body.push_str(&format!("  {k}: {n}\n"));
        }
    }
    if let (Some(base), Report::Weekly) = (public_url, report) {
        body.push_str(&format!(
            "\nThe report in the console: {}/reports/weekly?week={from}\n",
            base.trim_end_matches('/')
        ));
    }
    (subject, body)
}

/// A configured mail server and where to send.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Mailboxes,
    public_url: Option<String>,
    zone: Zone,
    /// The weekly reports: which, to whom, on which day at what time.
    reports: Vec<(Report, Mailboxes, jiff::civil::Weekday, jiff::civil::Time)>,
    /// A trust's schools whose own leads are mailed too: (id, name, their addresses).
    schools: Vec<(String, String, Mailboxes)>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, MailError> {
    value
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            field,
            value: value.to_owned(),
            source: e,
        })
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, MailError> {
    std::fs::read(path).map_err(|source| MailError::Read {
        path: path.to_owned(),
        source,
    })
}

impl Mailer {
    pub fn new(smtp: &Smtp, public_url: Option<&str>, zone: Zone) -> Result<Self, MailError> {
        let mut to = Mailboxes::new();
        for t in &smtp.to {
            to.push(mailbox("to", t)?);
        }
        let from = mailbox("from", &smtp.from)?;
        let tls = || -> Result<TlsParameters, MailError> {
            let mut b = TlsParameters::builder(smtp.host.clone());
            if let Some(ca) = &smtp.ca_file {
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(Certificate::from_pem(&read(ca)?)?);
            }
            Ok(b.build_rustls()?)
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(30)));
        b = match smtp.security {
            SmtpSecurity::Starttls => b.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::None => b.tls(Tls::None),
        };
        if let (Some(user), Some(file)) = (&smtp.username, &smtp.password_file) {
            let password = String::from_utf8_lossy(&read(file)?).trim().to_owned();
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: b.build(),
            from,
            to,
            public_url: public_url.map(str::to_owned),
            zone,
            reports: Vec::new(),
            schools: Vec::new(),
        })
    }

    /// This mailer, also sending each school's high-risk incidents, and its own weekly
    /// summary when one is set, to the school's `mail_to`.
    pub fn with_schools(mut self, schools: &[crate::config::School]) -> Result<Self, MailError> {
        for school in schools {
            if school.mail_to.is_empty() {
                continue;
            }
            let mut to = Mailboxes::new();
            for t in &school.mail_to {
                to.push(mailbox("schools.mail_to", t)?);
            }
            self.schools
                .push((school.id.to_string(), school.name.clone(), to));
        }
        Ok(self)
    }

    /// This mailer, also sending the weekly `reports`.
    pub fn with_reports(mut self, reports: &crate::config::Reports) -> Result<Self, MailError> {
        for (report, scheduled) in [
            (Report::Weekly, &reports.weekly),
            (Report::Governors, &reports.governors),
        ] {
            let Some(s) = scheduled else { continue };
            let mut to = Mailboxes::new();
            for t in &s.to {
                to.push(mailbox("reports.to", t)?);
            }
            self.reports.push((report, to, s.day.0, s.time.0));
        }
        Ok(self)
    }

    /// Sends each weekly report that is due at `now_ms` and not yet sent for its week;
    /// how many were sent. A report is claimed in the database before it is sent (so it goes
    /// once, whichever console sends it) and the claim given up if the send fails.
    /// Besides the trust's copy, each school with `mail_to` gets the DSL's weekly summary of
    /// its own records (claimed as `weekly:{school}`).
    pub async fn reports_once(&self, db: &Db, now_ms: i64) -> Result<usize, MailError> {
        /// One copy of a report: to whom, of whose records, claimed under which name.
        struct Sending<'m> {
            report: Report,
            to: &'m Mailboxes,
            day: jiff::civil::Weekday,
            time: jiff::civil::Time,
            scope: crate::db::Scope,
            claim: String,
            /// The school's name, for its own copy.
            school: Option<&'m str>,
        }
        let mut sent = 0;
        let mut copies = Vec::new();
        for (report, to, day, time) in &self.reports {
            copies.push(Sending {
                report: *report,
                to,
                day: *day,
                time: *time,
                scope: crate::db::Scope::Trust,
                claim: report.as_str().to_owned(),
                school: None,
            });
            if *report == Report::Weekly {
                for (id, name, to) in &self.schools {
                    copies.push(Sending {
                        report: *report,
                        to,
                        day: *day,
                        time: *time,
                        scope: crate::db::Scope::school(id),
                        claim: format!("{}:{id}", report.as_str()),
                        school: Some(name),
                    });
                }
            }
        }
        for Sending {
            report,
            to,
            day,
            time,
            scope,
            claim,
            school,
        } in &copies
        {
            let report = *report;
            let Some(due) = self.zone.last_at(*day, *time, now_ms) else {
                continue;
            };
            let week = self.zone.week_before(due);
            match db.claim_report(claim, week.0, now_ms).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(error = %e, "cannot tell whether a report was sent");
                    continue;
                }
            }
            let w = crate::db::reports::Window {
                from_ms: week.0,
                to_ms: week.1,
                scope,
            };
            let result = async {
                let sections =
                    crate::web::reports::weekly_sections(db, &self.zone, w, report.role())
                        .await
                        .map_err(MailError::Report)?;
                let (mut subject, body) = compose_report(
                    report,
                    &sections,
                    week,
                    &self.zone,
                    self.public_url.as_deref(),
                );
                if let Some(name) = school {
                    subject.push_str(&format!(" ({name})"));
                }
                let message = Message::builder()
                    .from(self.from.clone())
                    .mailbox(lettre::message::header::To::from((*to).clone()))
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body)?;
                self.transport.send(message).await?;
                Ok::<(), MailError>(())
            }
            .await;
            if let Err(e) = result {
                if let Err(undo) = db.unclaim_report(claim, week.0).await {
                    warn!(error = %undo, "cannot give up a report's claim; it will not be sent again");
                }
                return Err(e);
            }
            info!(report = %claim, week = %self.zone.date_of(week.0), "weekly report e-mailed");
            sent += 1;
        }
        Ok(sent)
    }

    /// Sends one message for `incidents` to the trust's addresses (`smtp.to`).
    pub async fn send(&self, incidents: &[Incident]) -> Result<(), MailError> {
        self.send_to(&self.to, None, incidents).await
    }

    async fn send_to(
        &self,
        to: &Mailboxes,
        school: Option<&str>,
        incidents: &[Incident],
    ) -> Result<(), MailError> {
        if to.iter().next().is_none() || incidents.is_empty() {
            return Ok(());
        }
        let (subject, body) =
            compose_for(school, incidents, self.public_url.as_deref(), &self.zone);
        let message = Message::builder()
            .from(self.from.clone())
            .mailbox(lettre::message::header::To::from(to.clone()))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        self.transport.send(message).await?;
        Ok(())
    }

    /// Sends `incidents` to the trust's addresses, and each school's to its own lead.
    async fn send_all(&self, db: &Db, incidents: &[Incident]) -> Result<(), MailError> {
        self.send(incidents).await?;
        if self.schools.is_empty() {
            return Ok(());
        }
        let of_agent = db
            .agent_schools(&crate::db::Scope::Trust)
            .await
            .map_err(MailError::Report)?;
        for (id, name, to) in &self.schools {
            let theirs: Vec<Incident> = incidents
                .iter()
                .filter(|i| of_agent.get(&i.agent) == Some(id))
                .cloned()
                .collect();
            self.send_to(to, Some(name), &theirs).await?;
        }
        Ok(())
    }

    /// Mails whatever is due; how many incidents were mailed.
    pub async fn once(&self, db: &Db) -> Result<usize, MailError> {
        let due = match db.claim_unmailed(PER_MESSAGE, crate::web::now_ms()).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot read incidents to e-mail");
                return Ok(0);
            }
        };
        if due.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = due.iter().map(|e| e.id.as_str()).collect();
        let sent = self.send_all(db, &due).await;
        if let Err(e) = db.mark_mailed(&ids, sent.is_ok()).await {
            // Claimed and not marked: another tick (or console) takes the claim over later.
            warn!(error = %e, "cannot mark incidents e-mailed");
        }
        sent?;
        Ok(due.len())
    }

    /// Mails due alerts and weekly reports every `tick` until `stop` turns true.
    pub async fn run(self, db: Db, tick: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            match self.once(&db).await {
                Ok(0) => {}
                Ok(n) => info!(incidents = n, "incidents e-mailed to the safeguarding lead"),
                Err(e) => warn!(error = %e, "cannot e-mail incidents; trying again"),
            }
            if let Err(e) = self.reports_once(&db, crate::web::now_ms()).await {
                warn!(error = %e, "cannot e-mail a weekly report; trying again");
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::events::tests::example;
    use crate::db::testing;
    use crate::web::tests::alert;

    /// The example attempt and its quarantine as one incident.
    fn incident() -> Incident {
        let e = example("bypass_attempt");
        let e = schoolgate_contract::wire::parse_event(event_json(&e)).unwrap();
        let mut i = Incident::open("gw1", &e);
        i.quarantined = true;
        i
    }

    fn event_json(e: &crate::db::events::Stored) -> serde_json::Value {
        serde_json::json!({
            "id": "0193abcd-0000-7000-8000-000000000000",
            "time": "2026-06-15T08:10:03Z", "kind": "bypass_attempt", "severity": "high",
            "device": {"ip": e.device_ip, "mac": e.device_mac, "name": e.device_name,
                       "owner": e.device_owner},
            "person": {"username": "amira.k", "display_name": "Amira Khan", "class": "6B"},
            "name": e.name, "technique": "openvpn", "destination": e.destination,
            "evidence": e.evidence, "count": 1,
        })
    }

    #[test]
    fn the_message_carries_no_pupil_detail_and_the_schools_time() {
        let i = incident();
        let (subject, body) = compose(
            std::slice::from_ref(&i),
            Some("https://console.school.example/"),
            &Zone::default(),
        );
        assert_eq!(subject, "schoolgate: 1 new high-risk incident");
        assert!(
            body.contains(
                "2026-06-15 09:10 BST  an attempt to get round the filter with a VPN \
                 (OpenVPN); the device was put in quarantine  (gateway gw1)"
            ),
            "{body}"
        );
        assert!(body.contains(&format!("https://console.school.example/alerts/{}", i.id)));
        for private in [
            "Amira",
            "amira.k",
            "6B",
            "10.10.3.7",
            "52:54",
            "Y6-iPad",
            "Jo Bloggs",
            "vpn.example",
            "192.0.2.9",
            "handshake",
        ] {
            assert!(!body.contains(private), "{private} in {body}");
        }
        let many = vec![i; 25];
        let (subject, body) = compose(&many, None, &Zone::default());
        assert_eq!(subject, "schoolgate: 25 new high-risk incidents");
        assert!(body.contains("…and 5 more."));
    }

    /// Python's aiosmtpd, from the lab's virtual environment (`.ci/run` installs it).
    fn sink_python() -> Option<std::path::PathBuf> {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-venv/bin/python3");
        let ok = std::process::Command::new(&p)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "aiosmtpd is not installed in target/lab-venv (see .ci/run)"
        );
        eprintln!("skipping: aiosmtpd is not installed in target/lab-venv (see .ci/run)");
        None
    }

    /// The start of the week the weekly report due at 00:00 today (by `config`) covers.
    fn week_reported(config: &crate::config::Config, zone: &Zone, now: i64) -> i64 {
        let day = config.reports.weekly.as_ref().unwrap().day.0;
        let due = zone
            .last_at(day, jiff::civil::time(0, 0, 0, 0), now)
            .unwrap();
        zone.week_before(due).0
    }

    /// An SMTP sink on loopback that writes each message it takes to a file of its own.
    struct Sink {
        child: std::process::Child,
        port: u16,
        dir: tempfile::TempDir,
    }

    impl Sink {
        fn start(python: &std::path::Path) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let script = r#"
import asyncio, sys, pathlib
from aiosmtpd.controller import Controller
out = pathlib.Path(sys.argv[2])
class Keep:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Keep.n += 1
        (out / f"{Keep.n}.eml").write_bytes(b"To: " + ",".join(envelope.rcpt_tos).encode() + b"\n" + envelope.content)
        return "250 kept"
c = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.read()
"#;
            let mut child = std::process::Command::new(python)
                .args([
                    "-c",
                    script,
                    &port.to_string(),
                    dir.path().to_str().unwrap(),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "ready");
            Self { child, port, dir }
        }

        /// The messages once there are at least `n`, waiting up to 20 s for them.
        async fn at_least(&self, n: usize) -> Vec<String> {
            let started = std::time::Instant::now();
            loop {
                let got = self.messages();
                if got.len() >= n {
                    return got;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "{} of {n} messages arrived: {got:?}",
                    got.len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        fn messages(&self) -> Vec<String> {
            let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
                .iter()
                .map(|p| unquote(&std::fs::read_to_string(p).unwrap()))
                .collect()
        }
    }

    /// A message with its quoted-printable body read back (RFC 2045 §6.7: soft line breaks
    /// joined, `=XX` decoded), as a mail reader shows it.
    fn unquote(message: &str) -> String {
        let joined = message.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }

    #[tokio::test]
    async fn high_severity_alerts_reach_the_smtp_sink_once() {
        let Some(python) = sink_python() else {
            return;
        };
        let sink = Sink::start(&python);
        for (db, _dir) in testing::each().await {
            let smtp: Smtp = serde_saphyr::from_str(&format!(
                "{{host: 127.0.0.1, port: {}, security: none, from: console@school.example, \
                 to: [dsl@school.example, deputy@school.example]}}",
                sink.port
            ))
            .unwrap();
            let mailer = Mailer::new(
                &smtp,
                Some("https://console.school.example"),
                Zone::default(),
            )
            .unwrap();
            let before = sink.messages().len();
            let vpn = alert("bypass_attempt", "vpn.example", "10.10.3.7");
            let mut low = alert("blocked", "instagram.com", "10.10.3.7");
            low.severity = schoolgate_contract::Severity::Low;
            db.ingest("gw1", &[vpn.clone(), low], 1).await.unwrap();

            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(mailer.run(db.clone(), Duration::from_millis(100), stopped));
            sink.at_least(before + 1).await;
            // Later ticks send nothing more: the alert is marked mailed.
            tokio::time::sleep(Duration::from_millis(400)).await;
            stop.send(true).unwrap();
            task.await.unwrap();
            let got = sink.messages();
            assert_eq!(got.len(), before + 1, "{got:?}");
            let m = got.last().unwrap();
            assert!(
                m.starts_with("To: dsl@school.example,deputy@school.example"),
                "{m}"
            );
            assert!(
                m.contains("Subject: schoolgate: 1 new high-risk incident"),
                "{m}"
            );
            assert!(m.contains(&format!("/alerts/{}", vpn.id)), "{m}");
            assert!(!m.contains("instagram") && !m.contains("10.10.3.7"), "{m}");
            assert!(db.unmailed(10).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn weekly_reports_go_once_a_week_the_governors_without_outcomes() {
        let Some(python) = sink_python() else {
            return;
        };
        let sink = Sink::start(&python);
        for (db, _dir) in testing::each().await {
            let zone = Zone::default();
            let now = crate::web::now_ms();
            // Due since midnight today (the school's time), each covering last week.
            // "Fri 2026-12-04" → "fri", as console.yaml may name a day.
            let today = zone.day_of(now).get(..3).unwrap_or_default().to_lowercase();
            let config: crate::config::Config = serde_saphyr::from_str(&format!(
                "smtp: {{host: 127.0.0.1, port: {}, security: none, from: console@school.example, \
                 to: [dsl@school.example]}}\n\
                 reports:\n  weekly: {{ to: [dsl@school.example], day: {today}, time: \"00:00\" }}\n  \
                 governors: {{ to: [clerk@school.example], day: {today}, time: \"00:00\" }}\n",
                sink.port
            ))
            .unwrap();
            let mailer = Mailer::new(
                config.smtp.as_ref().unwrap(),
                Some("https://console.school.example"),
                zone.clone(),
            )
            .unwrap()
            .with_reports(&config.reports)
            .unwrap();
            // Last week, a resolved bypass attempt.
            let from = week_reported(&config, &zone, now);
            let mut vpn = alert("bypass_attempt", "vpn.example", "10.10.3.7");
            vpn.event.time = crate::db::events::tests::ms(from + 3_600_000);
            db.ingest("gw1", std::slice::from_ref(&vpn), now)
                .await
                .unwrap();
            let done = crate::db::cases::Triage {
                status: "resolved",
                outcome: Some("spoken to the pupil"),
                action_taken: None,
            };
            assert!(
                db.triage(&vpn.id.to_string(), &done, "dsl", now)
                    .await
                    .unwrap()
            );

            let before = sink.messages().len();
            assert_eq!(mailer.reports_once(&db, now).await.unwrap(), 2);
            // Sent for this week: nothing more, however often asked (or by another console).
            assert_eq!(mailer.reports_once(&db, now + 60_000).await.unwrap(), 0);
            let got = sink.at_least(before + 2).await;
            let new = &got[before..];
            let weekly = new.iter().find(|m| m.contains("To: dsl@")).unwrap();
            let governors = new.iter().find(|m| m.contains("To: clerk@")).unwrap();
            let monday = zone.date_of(from);
            assert!(
                weekly.contains(&format!("Subject: schoolgate: weekly summary, {monday} to")),
                "{weekly}"
            );
            assert!(weekly.contains("a VPN (OpenVPN): 1"), "{weekly}");
            assert!(weekly.contains("spoken to the pupil: 1"), "{weekly}");
            assert!(
                weekly.contains(&format!("/reports/weekly?week={monday}")),
                "{weekly}"
            );
            assert!(
                governors.contains("weekly report for governors"),
                "{governors}"
            );
            assert!(governors.contains("a VPN (OpenVPN): 1"), "{governors}");
            assert!(!governors.contains("spoken to the pupil"), "{governors}");
            for m in [weekly, governors] {
                assert!(!m.contains("10.10.3.7") && !m.contains("Y6-iPad"), "{m}");
            }
        }
    }

    #[tokio::test]
    async fn a_server_that_is_down_leaves_alerts_to_mail_later() {
        for (db, _dir) in testing::each().await {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let smtp: Smtp = serde_saphyr::from_str(&format!(
                "{{host: 127.0.0.1, port: {port}, security: none, from: c@school.example, to: [d@school.example]}}"
            ))
            .unwrap();
            let mailer = Mailer::new(&smtp, None, Zone::default()).unwrap();
            db.ingest(
                "gw1",
                &[alert("bypass_attempt", "x.example", "10.0.0.1")],
                1,
            )
            .await
            .unwrap();
            assert!(mailer.once(&db).await.is_err());
            assert_eq!(db.unmailed(10).await.unwrap().len(), 1);
        }
    }

    /// Two consoles on one database, mailing at once: each incident goes in one message.
    #[tokio::test]
    async fn consoles_sharing_a_database_mail_each_incident_once() {
        let Some(python) = sink_python() else {
            return;
        };
        let sink = Sink::start(&python);
        for (db, _dir) in testing::each().await {
            let smtp: Smtp = serde_saphyr::from_str(&format!(
                "{{host: 127.0.0.1, port: {}, security: none, from: console@school.example, \
                 to: [dsl@school.example]}}",
                sink.port
            ))
            .unwrap();
            let one = Mailer::new(&smtp, None, Zone::default()).unwrap();
            let two = Mailer::new(&smtp, None, Zone::default()).unwrap();
            let before = sink.messages().len();
            let alerts: Vec<_> = (0..6)
                .map(|i| alert("bypass_attempt", "vpn.example", &format!("10.10.3.{i}")))
                .collect();
            db.ingest("gw1", &alerts, 1).await.unwrap();
            let (a, b) = tokio::join!(one.once(&db), two.once(&db));
            assert_eq!(a.unwrap() + b.unwrap(), 6);
            assert_eq!(
                one.once(&db).await.unwrap() + two.once(&db).await.unwrap(),
                0
            );
            sink.at_least(before + 1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let text = sink.messages()[before..].join("\n");
            for a in &alerts {
                assert_eq!(
                    text.matches(&format!("/alerts/{}", a.id)).count(),
                    0,
                    "no public URL"
                );
            }
            assert_eq!(
                text.matches("an attempt to get round the filter").count(),
                6,
                "{text}"
            );
        }
    }

    /// In a trust, each school's lead hears of their own school's incidents, and gets
    /// their own school's week; the trust's addresses get everything.
    #[tokio::test]
    async fn each_school_hears_of_its_own_incidents_and_week() {
        let Some(python) = sink_python() else {
            return;
        };
        let sink = Sink::start(&python);
        for (db, _dir) in testing::each().await {
            let zone = Zone::default();
            let now = crate::web::now_ms();
            let today = zone.day_of(now).get(..3).unwrap_or_default().to_lowercase();
            let config = crate::config::Config::parse(&format!(
                "smtp: {{host: 127.0.0.1, port: {}, security: none, from: console@trust.example, \
                 to: [safeguarding@trust.example]}}\n\
                 reports:\n  weekly: {{ to: [safeguarding@trust.example], day: {today}, time: \"00:00\" }}\n\
                 schools:\n  - {{ id: oak, name: Oak Primary, mail_to: [dsl@oak.example] }}\n  \
                 - {{ id: elm, name: Elm Academy, mail_to: [dsl@elm.example] }}\n",
                sink.port
            ))
            .unwrap();
            let mailer = Mailer::new(config.smtp.as_ref().unwrap(), None, zone.clone())
                .unwrap()
                .with_reports(&config.reports)
                .unwrap()
                .with_schools(&config.schools)
                .unwrap();
            for (agent, school) in [("gw-oak", "oak"), ("gw-elm", "elm")] {
                db.add_agent(agent, agent, 1).await.unwrap();
                db.set_agent_school(agent, Some(school)).await.unwrap();
            }
            // This week, one attempt at each school; last week, one at Oak only.
            db.ingest(
                "gw-oak",
                &[alert("bypass_attempt", "a.example", "10.1.0.1")],
                now,
            )
            .await
            .unwrap();
            db.ingest(
                "gw-elm",
                &[alert("bypass_attempt", "b.example", "10.2.0.1")],
                now,
            )
            .await
            .unwrap();
            let from = week_reported(&config, &zone, now);
            let mut last_week = alert("bypass_attempt", "c.example", "10.1.0.2");
            last_week.event.time = crate::db::events::tests::ms(from + 3_600_000);
            db.ingest("gw-oak", std::slice::from_ref(&last_week), now)
                .await
                .unwrap();
            let before = sink.messages().len();
            assert_eq!(mailer.once(&db).await.unwrap(), 3);
            assert_eq!(mailer.reports_once(&db, now).await.unwrap(), 3);
            assert_eq!(mailer.reports_once(&db, now + 60_000).await.unwrap(), 0);
            let got = sink.at_least(before + 6).await;
            let new = &got[before..];
            let one = |to: &str, what: &str| -> &String {
                let found: Vec<&String> = new
                    .iter()
                    .filter(|m| m.starts_with(&format!("To: {to}")) && m.contains(what))
                    .collect();
                assert_eq!(found.len(), 1, "{to} {what}: {new:?}");
                found[0]
            };
            let trust = one("safeguarding@trust.example", "high-risk");
            assert!(
                trust.contains("gw-oak") && trust.contains("gw-elm"),
                "{trust}"
            );
            let oak = one("dsl@oak.example", "high-risk");
            assert!(
                oak.contains("Subject: schoolgate: 2 new high-risk incidents at Oak Primary"),
                "{oak}"
            );
            assert!(oak.contains("gw-oak") && !oak.contains("gw-elm"), "{oak}");
            let elm = one("dsl@elm.example", "high-risk");
            assert!(elm.contains("gw-elm") && !elm.contains("gw-oak"), "{elm}");
            let week = one("dsl@oak.example", "weekly summary");
            assert!(
                week.contains("(Oak Primary)") && week.contains("a VPN (OpenVPN): 1"),
                "{week}"
            );
            let week = one("dsl@elm.example", "weekly summary");
            assert!(!week.contains("OpenVPN"), "{week}");
            let week = one("safeguarding@trust.example", "weekly summary");
            assert!(week.contains("a VPN (OpenVPN): 1"), "{week}");
        }
    }
}
