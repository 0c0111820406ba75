//! The console's settings: `console.yaml` in the data directory (optional; every key has a
//! default), read with serde-saphyr so an error names its line and column.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings file's name in the data directory.
pub const FILE_NAME: &str = "console.yaml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address staff open, used in e-mails (`https://console.school.example:8443`).
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate chain and key (PEM). Agents need HTTPS.
    pub tls: Option<Tls>,
    /// How long a login lasts at most, in hours.
    pub session_hours: u32,
    /// A login unused for this many minutes ends.
    pub session_idle_minutes: u32,
    pub retention: Retention,
    pub smtp: Option<Smtp>,
    /// How many connections at once.
    pub connections: Connections,
    /// The TLS proxy (or proxies) in front of the console, when it serves plain HTTP behind
    /// one: their `X-Forwarded-For` is believed for the client's address, cookies are
    /// marked `Secure` and HSTS is sent. Empty: no proxy, the connection's address is the
    /// client's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The school's time zone (IANA name): pages, downloads and e-mail show its times, and
    /// its days and weeks (Monday 00:00) bound the reports.
    pub time_zone: crate::zone::Zone,
    /// The roles whose accounts decide teachers' requests for exceptions (never their own).
    pub request_approvers: Vec<crate::auth::Role>,
    /// Reports e-mailed each week (through `smtp`).
    pub reports: Reports,
    /// Threshold rules: many events of a kind for one person or device become an incident.
    pub thresholds: Vec<crate::thresholds::Threshold>,
    /// The schools of a trust sharing this console. Empty for one school's console. An
    /// agent and a user are put in one with `agent school` and `user school`; a user in a
    /// school sees that school's records only, a user in none the whole trust's.
    #[serde(deserialize_with = "unique_schools")]
    pub schools: Vec<School>,
}

/// The schools, each id once.
fn unique_schools<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<School>, D::Error> {
    let schools = Vec::<School>::deserialize(d)?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = schools.iter().find(|s| !seen.insert(s.id.as_str())) {
        return Err(serde::de::Error::custom(format!(
            "school {:?} is listed twice",
            twice.id.as_str()
        )));
    }
    Ok(schools)
}

/// One school of the trust.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct School {
    /// Short and fixed (`oak`, `st-marys`): what accounts and agents are put in.
    pub id: SchoolId,
    /// As the pages show it (`Oak Primary`).
    pub name: String,
    /// The school's safeguarding lead(s): its high-risk incidents, each as it happens, and
    /// its own weekly report, besides what `smtp.to` and `reports` receive for the trust.
    #[serde(default)]
    pub mail_to: Vec<String>,
}

/// A school's id: 1 to 32 of `a-z`, `0-9` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchoolId(String);

impl SchoolId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SchoolId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A school id that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a school id: 1 to 32 of a-z, 0-9 and -")]
pub struct BadSchoolId(pub String);

impl std::str::FromStr for SchoolId {
    type Err = BadSchoolId;
    fn from_str(s: &str) -> Result<Self, BadSchoolId> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadSchoolId(schoolgate_contract::text::bounded_to(s, 40)))
        }
    }
}

impl<'de> Deserialize<'de> for SchoolId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The weekly reports e-mailed, each at its own local day and time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reports {
    /// The weekly summary for the safeguarding lead: the weekly report with outcomes.
    pub weekly: Option<Scheduled>,
    /// The governors' version: sums only, no outcomes.
    pub governors: Option<Scheduled>,
}

/// When and to whom a weekly report goes: it covers the last whole week (Monday 00:00 to
/// Monday 00:00, the school's time) before it is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {
    pub to: Vec<String>,
    /// `monday` … `sunday`.
    pub day: Day,
    /// `HH:MM`, the school's time.
    pub time: ClockTime,
}

/// A day of the week, by its English name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day(pub jiff::civil::Weekday);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use jiff::civil::Weekday;
        let name = String::deserialize(d)?;
        let day = match name.trim().to_ascii_lowercase().as_str() {
            "monday" | "mon" => Weekday::Monday,
            "tuesday" | "tue" => Weekday::Tuesday,
            "wednesday" | "wed" => Weekday::Wednesday,
            "thursday" | "thu" => Weekday::Thursday,
            "friday" | "fri" => Weekday::Friday,
            "saturday" | "sat" => Weekday::Saturday,
            "sunday" | "sun" => Weekday::Sunday,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "{name:?} is not a day of the week (monday … sunday)"
                )));
            }
        };
        Ok(Self(day))
    }
}

/// A time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockTime(pub jiff::civil::Time);

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .parse::<jiff::civil::Time>()
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a time (HH:MM)")))
    }
}

/// Connections open at once.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// In all; keep it well under the open-file limit (the unit sets `LimitNOFILE=8192`).
    pub max: usize,
    /// From one address (an IPv6 /64); trusted proxies are not counted.
    pub per_address: usize,
}

impl Default for Connections {
    fn default() -> Self {
        let l = crate::web::Limits::default();
        Self {
            max: l.connections,
            per_address: l.per_address,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: None,
            tls: None,
            session_hours: 10,
            session_idle_minutes: 30,
            retention: Retention::default(),
            smtp: None,
            connections: Connections::default(),
            trusted_proxies: Vec::new(),
            time_zone: crate::zone::Zone::default(),
            request_approvers: vec![crate::auth::Role::Approver, crate::auth::Role::Dsl],
            reports: Reports::default(),
            thresholds: Vec::new(),
            schools: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How long each kind of record is kept, in days; purged daily.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Alerts (bypass attempts, quarantines, high severity) with their notes and history.
    pub alerts_days: u32,
    /// Blocked activity and every other event.
    pub blocked_days: u32,
    /// The audit log, kept longer than what it audits.
    pub audit_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            alerts_days: 365,
            blocked_days: 90,
            audit_days: 3 * 365,
        }
    }
}

/// Where alert e-mails go, and through which server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (a relay on loopback).
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// A file holding the SMTP password (kept out of this file).
    pub password_file: Option<PathBuf>,
    pub from: String,
    /// The safeguarding lead's address(es).
    pub to: Vec<String>,
    /// Trust only these certificates (PEM) for the server; else the system's bundle.
    pub ca_file: Option<PathBuf>,
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

/// A school asked for that `console.yaml` does not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no school {asked:?} in console.yaml's schools (there are: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
pub struct UnknownSchool {
    pub asked: String,
    pub known: Vec<String>,
}

/// The settings file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
}

impl Config {
    /// The school `id`, if this console has it.
    pub fn school(&self, id: &str) -> Option<&School> {
        self.schools.iter().find(|s| s.id.as_str() == id)
    }

    /// School `id`'s name, or the id itself where this file no longer lists it.
    pub fn school_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.school(id).map_or(id, |s| s.name.as_str())
    }

    /// The schools `ids` (separated by commas, as an account holds them) by name.
    pub fn school_names(&self, ids: &str) -> String {
        ids.split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| self.school_name(id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The school named by `text` (its id): `None` for empty text (the whole trust), an
    /// error naming the schools there are for anything else.
    pub fn school_named(&self, text: &str) -> Result<Option<&School>, UnknownSchool> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        self.school(text).map(Some).ok_or_else(|| UnknownSchool {
            asked: schoolgate_contract::text::bounded_to(text, 40),
            known: self.schools.iter().map(|s| s.id.to_string()).collect(),
        })
    }

    /// How long a session may go unused, in milliseconds.
    pub fn session_idle_ms(&self) -> i64 {
        i64::from(self.session_idle_minutes) * 60_000
    }

    /// The data directory's `console.yaml`, or the defaults if there is none.
    pub fn load(data: &Path) -> Result<Self, ConfigError> {
        let path = data.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path,
            source: Box::new(source),
        })
    }

    /// Settings from YAML text; the error names line and column.
    pub fn parse(text: &str) -> Result<Self, serde_saphyr::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `console.yaml` that docs/deploy.md shows, every key in it, is one the console
    /// reads (the file refuses unknown keys), with the values it says.
    #[test]
    fn the_deployment_guides_example_is_a_valid_file() {
        let guide = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy.md"),
        )
        .unwrap();
        let example = guide
            .split("```yaml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.starts_with("public_url:"))
            .expect("deploy.md shows a console.yaml");
        let config = Config::parse(example).unwrap();
        assert_eq!(config.session_idle_minutes, 30);
        assert_eq!(config.connections.max, 1024);
        assert_eq!(config.retention.audit_days, 1095);
        assert!(config.smtp.is_some() && config.tls.is_some());
    }

    #[test]
    fn defaults_and_a_full_file() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.retention.alerts_days, 365);
        assert_eq!(c.retention.blocked_days, 90);
        let c = Config::parse(
            "public_url: https://console.school.example:8443\n\
             retention: { alerts_days: 400 }\n\
             smtp: { host: 127.0.0.1, port: 2525, security: none, from: console@school.example, to: [dsl@school.example] }\n",
        )
        .unwrap();
        assert_eq!(c.retention.alerts_days, 400);
        assert_eq!(c.retention.blocked_days, 90);
        let smtp = c.smtp.unwrap();
        assert_eq!((smtp.port, smtp.security), (2525, SmtpSecurity::None));
    }

    #[test]
    fn a_mistake_names_its_line() {
        let e = Config::parse("session_hours: 8\nretention: { alert_days: 3 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("alert_days") && e.contains('2'), "{e}");
        let e = Config::parse("session_hours: 8\ntime_zone: Europe/Lundon\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"Europe/Lundon\"") && e.contains("line 2"),
            "{e}"
        );
        assert_eq!(Config::parse("").unwrap().time_zone.name(), "Europe/London");
        let e = Config::parse("schools:\n  - { id: Oak, name: Oak Primary }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"Oak\" is not a school id") && e.contains("line 2"),
            "{e}"
        );
        let e = Config::parse(
            "schools:\n  - { id: oak, name: Oak }\n  - { id: oak, name: Oak again }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"oak\" is listed twice"), "{e}");
        let c = Config::parse(
            "schools:\n  - { id: oak, name: Oak Primary, mail_to: [dsl@oak.example] }\n",
        )
        .unwrap();
        assert_eq!(
            c.school("oak").map(|s| s.name.as_str()),
            Some("Oak Primary")
        );
        assert_eq!(c.school_named(" ").unwrap().map(|s| s.id.as_str()), None);
        let e = c.school_named("elm").unwrap_err().to_string();
        assert!(e.contains("\"elm\"") && e.contains("there are: oak"), "{e}");
        let c = Config::parse("time_zone: America/New_York\n").unwrap();
        assert_eq!(c.time_zone.name(), "America/New_York");
    }
}
