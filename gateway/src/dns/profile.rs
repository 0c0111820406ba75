//! What IT deploys on a school device so that it asks the school's resolver wherever it is:
//! the device's DNS over HTTPS template or DNS over TLS name, in the form each platform's
//! management takes it.
//!
//! - Apple: a configuration profile (`.mobileconfig`) with one `com.apple.dnsSettings.managed`
//!   payload (macOS 11 and iOS 14 on), DNS over HTTPS by the device's template.
//! - Windows 11: PowerShell that registers the template for the server's address, with no
//!   fallback to plain DNS, and points the physical adapters at it.
//! - ChromeOS: the `DnsOverHttpsMode` and `DnsOverHttpsTemplates` policy values, as JSON for
//!   the admin console's or a managed policy file.
//! - Android: the Private DNS host name (DNS over TLS, port 853 only), for an EMM's
//!   `private_dns_specifier` or the device's settings.
//!
//! Identifiers inside an Apple profile are derived from the device's id, so printing the
//! profile again gives the same profile (an MDM replaces it rather than adding a second).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The platforms a profile is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Apple,
    Windows,
    ChromeOs,
    Android,
}

/// The device's way to the school's resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// The device's name in the policy, for the profile's own words.
    pub device: &'a str,
    /// Its off-site id.
    pub id: &'a str,
    /// The name devices ask by (`gateway.off_site.server_name`).
    pub server_name: &'a str,
    /// Where DNS over HTTPS is served, if it is.
    pub doh: Option<SocketAddr>,
    /// Where DNS over TLS is served, if it is.
    pub dot: Option<SocketAddr>,
    /// The server's public address, where the listen address does not say (it is 0.0.0.0
    /// behind a port forward): Windows' templates are registered by address.
    pub public_address: Option<IpAddr>,
    /// The school's name, for the profile's organisation.
    pub school: &'a str,
}

/// Why a profile cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("{platform} takes DNS over HTTPS: `gateway.off_site.doh` names no address")]
    NoDoh { platform: &'static str },
    #[error(
        "Android's Private DNS is DNS over TLS on port 853: `gateway.off_site.dot` names {found}"
    )]
    NoDotOn853 { found: String },
    #[error(
        "Windows registers a template by the server's address, and the DoH listen address {listen} does not say it: give it with --address"
    )]
    NoAddress { listen: SocketAddr },
}

impl Endpoint<'_> {
    /// `https://{server_name}[:{port}]/dns-query/{id}`.
    pub fn doh_template(&self) -> Option<String> {
        let doh = self.doh?;
        Some(match doh.port() {
            443 => format!("https://{}/dns-query/{}", self.server_name, self.id),
            port => format!("https://{}:{port}/dns-query/{}", self.server_name, self.id),
        })
    }

    /// `{id}.{server_name}`: the name a DNS over TLS client asks by.
    pub fn dot_name(&self) -> String {
        format!("{}.{}", self.id, self.server_name)
    }

    fn doh_for(&self, platform: &'static str) -> Result<String, ProfileError> {
        self.doh_template().ok_or(ProfileError::NoDoh { platform })
    }

    /// The profile for `platform`, as text to save or paste.
    pub fn profile(&self, platform: Platform) -> Result<String, ProfileError> {
        match platform {
            Platform::Apple => self.apple(),
            Platform::Windows => self.windows(),
            Platform::ChromeOs => self.chromeos(),
            Platform::Android => self.android(),
        }
    }

    fn apple(&self) -> Result<String, ProfileError> {
        let template = self.doh_for("Apple")?;
        let payload = uuid_of(self.id, "payload");
        let profile = uuid_of(self.id, "profile");
        let ident = format!("schoolgate.dns.{}", self.id);
        Ok(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>DNSSettings</key>
			<dict>
				<key>DNSProtocol</key>
				<string>HTTPS</string>
				<key>ServerURL</key>
				<string>{template}</string>
			</dict>
			<key>PayloadDisplayName</key>
			<string>School filtered DNS</string>
			<key>PayloadIdentifier</key>
			<string>{ident}.settings</string>
			<key>PayloadType</key>
			<string>com.apple.dnsSettings.managed</string>
			<key>PayloadUUID</key>
			<string>{payload}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
			<key>ProhibitDisablement</key>
			<true/>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>{device} asks {school}'s filtered DNS over HTTPS, at school and away from it.</string>
	<key>PayloadDisplayName</key>
	<string>{school}: filtered DNS for {device}</string>
	<key>PayloadIdentifier</key>
	<string>{ident}</string>
	<key>PayloadOrganization</key>
	<string>{school}</string>
	<key>PayloadRemovalDisallowed</key>
	<true/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>{profile}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
"#,
            template = xml(&template),
            ident = xml(&ident),
            device = xml(self.device),
            school = xml(self.school),
        ))
    }

    fn windows(&self) -> Result<String, ProfileError> {
        let template = self.doh_for("Windows")?;
        let listen = self.doh.ok_or(ProfileError::NoDoh {
            platform: "Windows",
        })?;
        let address = match self.public_address {
            Some(a) => a,
            None if !listen.ip().is_unspecified() => listen.ip(),
            None => return Err(ProfileError::NoAddress { listen }),
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# {}: {}'s filtered DNS over HTTPS, at school and away (Windows 11; run as administrator).",
            ps_comment(self.device),
            ps_comment(self.school)
        );
        let _ = writeln!(
            s,
            "Remove-DnsClientDohServerAddress -ServerAddress '{address}' -ErrorAction SilentlyContinue"
        );
        let _ = writeln!(
            s,
            "Add-DnsClientDohServerAddress -ServerAddress '{address}' -DohTemplate '{}' -AllowFallbackToUdp $False -AutoUpgrade $True",
            ps_quoted(&template)
        );
        let _ = writeln!(
            s,
            "Get-NetAdapter -Physical | ForEach-Object {{ Set-DnsClientServerAddress -InterfaceIndex $_.ifIndex -ServerAddresses '{address}' }}"
        );
        Ok(s)
    }

    fn chromeos(&self) -> Result<String, ProfileError> {
        let template = self.doh_for("ChromeOS")?;
        Ok(format!(
            "{{\n  \"DnsOverHttpsMode\": \"secure\",\n  \"DnsOverHttpsTemplates\": \"{}\"\n}}\n",
            json(&template)
        ))
    }

    fn android(&self) -> Result<String, ProfileError> {
        match self.dot {
            Some(d) if d.port() == 853 => Ok(format!("{}\n", self.dot_name())),
            Some(d) => Err(ProfileError::NoDotOn853 {
                found: d.to_string(),
            }),
            None => Err(ProfileError::NoDotOn853 {
                found: "no address".to_owned(),
            }),
        }
    }
}

/// A stable UUID (version 8, RFC 9562) for `id`'s `purpose`, from two FNV-1a hashes.
fn uuid_of(id: &str, purpose: &str) -> String {
    let a = schoolgate_engine::fnv::fnv1a(id.bytes().chain(*b"/").chain(purpose.bytes()));
    let b = schoolgate_engine::fnv::fnv1a(purpose.bytes().chain(*b"/").chain(id.bytes()));
    let mut bytes = [0u8; 16];
    let (hi, lo) = bytes.split_at_mut(8);
    hi.copy_from_slice(&a.to_be_bytes());
    lo.copy_from_slice(&b.to_be_bytes());
    // Version 8 in the high nibble of byte 6, the RFC variant in the top bits of byte 8.
    if let Some(v) = bytes.get_mut(6) {
        *v = (*v & 0x0f) | 0x80;
    }
    if let Some(v) = bytes.get_mut(8) {
        *v = (*v & 0x3f) | 0x80;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    let part = |r: std::ops::Range<usize>| hex.get(r).unwrap_or("");
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Inside PowerShell's single quotes only a quote needs doubling.
fn ps_quoted(s: &str) -> String {
    s.replace('\'', "''")
}

fn ps_comment(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint<'static> {
        Endpoint {
            device: "ICT-Suite-01",
            id: "ict-suite-01-k7q2",
            server_name: "dns.school.example",
            doh: Some("0.0.0.0:443".parse().unwrap()),
            dot: Some("0.0.0.0:853".parse().unwrap()),
            public_address: Some("203.0.113.2".parse().unwrap()),
            school: "St Mary's & St John's",
        }
    }

    #[test]
    fn each_platform_gets_the_devices_own_template_or_name() {
        let e = endpoint();
        let apple = e.profile(Platform::Apple).unwrap();
        assert!(
            apple.contains(
                "<string>https://dns.school.example/dns-query/ict-suite-01-k7q2</string>"
            )
        );
        assert!(apple.contains("<string>com.apple.dnsSettings.managed</string>"));
        assert!(apple.contains("<string>St Mary's &amp; St John's</string>"));
        assert_eq!(apple, e.profile(Platform::Apple).unwrap(), "stable");
        let windows = e.profile(Platform::Windows).unwrap();
        assert!(windows.contains("-ServerAddress '203.0.113.2' -DohTemplate 'https://dns.school.example/dns-query/ict-suite-01-k7q2' -AllowFallbackToUdp $False"));
        let chrome = e.profile(Platform::ChromeOs).unwrap();
        let v: serde_json::Value = serde_json::from_str(&chrome).unwrap();
        assert_eq!(v["DnsOverHttpsMode"], "secure");
        assert_eq!(
            v["DnsOverHttpsTemplates"],
            "https://dns.school.example/dns-query/ict-suite-01-k7q2"
        );
        assert_eq!(
            e.profile(Platform::Android).unwrap(),
            "ict-suite-01-k7q2.dns.school.example\n"
        );
    }

    #[test]
    fn what_a_platform_cannot_use_is_said() {
        let mut e = endpoint();
        e.doh = Some("0.0.0.0:8443".parse().unwrap());
        assert_eq!(
            e.doh_template().unwrap(),
            "https://dns.school.example:8443/dns-query/ict-suite-01-k7q2"
        );
        e.public_address = None;
        assert!(matches!(
            e.profile(Platform::Windows),
            Err(ProfileError::NoAddress { .. })
        ));
        e.doh = Some("203.0.113.2:443".parse().unwrap());
        assert!(
            e.profile(Platform::Windows)
                .unwrap()
                .contains("'203.0.113.2'")
        );
        e.dot = Some("0.0.0.0:8853".parse().unwrap());
        assert!(matches!(
            e.profile(Platform::Android),
            Err(ProfileError::NoDotOn853 { .. })
        ));
        e.doh = None;
        assert!(matches!(
            e.profile(Platform::ChromeOs),
            Err(ProfileError::NoDoh { .. })
        ));
    }

    #[test]
    fn identifiers_are_uuids_of_version_8() {
        let u = uuid_of("ict-suite-01-k7q2", "payload");
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'8');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'A' | b'B'));
        assert_ne!(u, uuid_of("ict-suite-01-k7q2", "profile"));
    }
}
