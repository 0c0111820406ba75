//! The console as the safeguarding lead sees it: signs in over HTTPS at the printed address
//! (with `curl`, the login form's CSRF token and a cookie jar) and reads the incidents as
//! the CSV download, so the demonstration checks the console a person would open.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DslError {
    #[error("cannot run curl: {0}")]
    Curl(std::io::Error),
    #[error("{url}: {what}")]
    Console { url: String, what: String },
}

/// One incident, the columns of `alerts.csv` the demonstration shows.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub(crate) id: String,
    /// When it began, in the school's time zone.
    pub(crate) time: String,
    /// The console's one-line title ("Amira K. (6B) used a VPN app on …").
    pub(crate) title: String,
    /// The techniques tried, by their names on the wire, comma-separated.
    pub(crate) technique: String,
    pub(crate) device_ip: String,
    /// The person signed in on the device, as the console names them.
    pub(crate) person: String,
}

/// A signed-in session: `curl` with a cookie jar, trusting the console's certificate.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    base: String,
    ca: PathBuf,
    jar: PathBuf,
}

impl Session {
    /// Signs in at `base` (e.g. `https://127.0.0.1:8443`) as `user` with the password in
    /// `password_file`, trusting `ca`, keeping cookies in `dir`.
    pub(crate) fn sign_in(
        base: &str,
        ca: &Path,
        user: &str,
        password_file: &Path,
        dir: &Path,
    ) -> Result<Self, DslError> {
        let session = Self {
            base: base.to_owned(),
            ca: ca.to_owned(),
            jar: dir.join(format!("{user}-cookies.txt")),
        };
        let login = format!("{base}/login");
        let csrf = session.csrf(&login)?;
        let password = format!("password@{}", password_file.display());
        let status = session.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            &format!("username={user}"),
            "--data-urlencode",
            &password,
            &login,
        ])?;
        if status != "303" {
            return Err(DslError::Console {
                url: login,
                what: format!("signing in as {user} answered HTTP {status}, not 303"),
            });
        }
        Ok(session)
    }

    fn curl(&self, args: &[&str]) -> Result<String, DslError> {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert"])
            .arg(&self.ca)
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args)
            .output()
            .map_err(DslError::Curl)?;
        if !out.status.success() {
            return Err(DslError::Console {
                url: self.base.clone(),
                what: format!("curl exited with {}", out.status),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The CSRF token of the first form on the page at `url`.
    fn csrf(&self, url: &str) -> Result<String, DslError> {
        let page = self.curl(&[url])?;
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
            .ok_or_else(|| DslError::Console {
                url: url.to_owned(),
                what: "the page has no form with a CSRF field".into(),
            })
    }

    /// The incidents the console lists, the most recently active first.
    pub(crate) fn alerts(&self) -> Result<Vec<Alert>, DslError> {
        let url = format!("{}/alerts.csv", self.base);
        let csv = self.curl(&[&url])?;
        read(&csv).ok_or(DslError::Console {
            url,
            what: "not the incidents CSV".into(),
        })
    }

    /// Releases the device of incident `id` from quarantine, as the incident page's form does.
    pub(crate) fn release(&self, id: &str, reason: &str) -> Result<(), DslError> {
        let page = format!("{}/alerts/{id}", self.base);
        let csrf = self.csrf(&page)?;
        let status = self.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            &format!("reason={reason}"),
            &format!("{page}/release"),
        ])?;
        match status.as_str() {
            "200" | "303" => Ok(()),
            other => Err(DslError::Console {
                url: page,
                what: format!("the release answered HTTP {other}"),
            }),
        }
    }
}

/// The rows of the console's CSV (every field quoted, `""` inside), by header name.
fn read(csv: &str) -> Option<Vec<Alert>> {
    let mut lines = csv.lines().filter(|l| !l.is_empty()).map(fields);
    let header = lines.next()?;
    let col = |name: &str| header.iter().position(|h| h == name);
    // The time's header names the school's time zone: "first seen (Europe/London)".
    let time = header.iter().position(|h| h.starts_with("first seen ("))?;
    let person = col("person");
    let (id, title, technique, ip) = (
        col("id")?,
        col("incident")?,
        col("technique")?,
        col("device ip")?,
    );
    let get = |row: &[String], i: usize| row.get(i).cloned().unwrap_or_default();
    Some(
        lines
            .map(|row| Alert {
                id: get(&row, id),
                time: get(&row, time),
                title: get(&row, title),
                technique: get(&row, technique),
                device_ip: get(&row, ip),
                person: person.map(|i| get(&row, i)).unwrap_or_default(),
            })
            .collect(),
    )
}

/// The fields of one CSV line.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_consoles_quoted_csv() {
        let csv = "\"id\",\"first seen (Europe/London)\",\"incident\",\"technique\",\"device ip\",\"device name\",\"group\",\"how\"\r\n\
                   \"7\",\"2026-11-24 09:15:03 +00:00\",\"10.10.4.21 used a VPN (OpenVPN)\",\"openvpn\",\"10.10.4.21\",\"\",\"pupils\",\"a \"\"quoted\"\", listed thing\"\r\n";
        let alerts = read(csv).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(
            (a.title.as_str(), a.technique.as_str(), a.device_ip.as_str(),),
            ("10.10.4.21 used a VPN (OpenVPN)", "openvpn", "10.10.4.21")
        );
        assert_eq!(
            fields("\"a\"\"b\",\"c,d\"")[..],
            ["a\"b".to_owned(), "c,d".to_owned()]
        );
    }

    #[test]
    fn something_else_is_not_read_as_alerts() {
        assert!(read("<html>sign in</html>").is_none());
    }
}
