//! `classify`: what a name or address is (category, app from the list's `[section]`,
//! technique from the category), whatever the decision; and the loading errors for bad
//! sections and techniques.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

mod common;

use common::lists;
use schoolgate_engine::{Policy, Technique, classify};

const POLICY: &str = r#"version: 1
school: { name: Test School, timezone: Europe/London }
calendar: { terms: [{ name: Autumn, from: 2026-09-03, to: 2026-12-18 }] }
categories:
  social: { lists: [social.txt, youtube.txt] }
  youtube: { lists: [youtube.txt] }
  doh: { lists: [doh.txt], technique: dns_over_https }
  vpn: { lists: [vpn.txt], technique: vpn_app }
groups:
  pupils: { networks: [10.10.0.0/16] }
rules:
  - { name: no vpn, groups: [pupils], block: [vpn] }
"#;

const SOCIAL: &str =
    "# social\n[instagram]\ninstagram.com\ncdninstagram.com\n[facebook]\nfacebook.com\nfbcdn.net\n";
const YOUTUBE: &str = "[youtube]\nyoutube.com\nyt3.ggpht.com\n";
const DOH: &str = "[cloudflare_dns]\ncloudflare-dns.com\n1.1.1.1\n[google_dns]\ndns.google\n";
const VPN: &str = "nordvpn.com\n[cloudflare_warp]\n162.159.192.0/24\n";

fn policy() -> Policy {
    let files = [
        ("social.txt", SOCIAL),
        ("youtube.txt", YOUTUBE),
        ("doh.txt", DOH),
        ("vpn.txt", VPN),
    ];
    Policy::from_yaml(POLICY, Path::new("/school/policy.yaml"), &lists(&files)).unwrap()
}

#[test]
fn names_and_addresses_are_classified_by_category_section_and_technique() {
    let p = policy();
    let c = classify(&p, "scontent-mxp1-1.CDNinstagram.com.");
    assert_eq!(
        (c.category, c.app, c.technique, c.listed),
        (
            Some("social"),
            Some("instagram"),
            None,
            Some("cdninstagram.com")
        )
    );
    // In two categories: the first in the file is the category; the section names the app.
    let c = classify(&p, "yt3.ggpht.com");
    assert_eq!((c.category, c.app), (Some("social"), Some("youtube")));
    let c = classify(&p, "mozilla.cloudflare-dns.com");
    assert_eq!(
        (c.category, c.app, c.technique),
        (
            Some("doh"),
            Some("cloudflare_dns"),
            Some(Technique::DnsOverHttps)
        )
    );
    let c = classify(&p, "1.1.1.1");
    assert_eq!(
        (c.app, c.technique),
        (Some("cloudflare_dns"), Some(Technique::DnsOverHttps))
    );
    let c = classify(&p, "162.159.192.7");
    assert_eq!(
        (c.category, c.app, c.technique, c.listed),
        (
            Some("vpn"),
            Some("cloudflare_warp"),
            Some(Technique::VpnApp),
            Some("162.159.192.0/24")
        )
    );
    // Before any section: a category but no app.
    let c = classify(&p, "www.nordvpn.com");
    assert_eq!(
        (c.category, c.app, c.technique),
        (Some("vpn"), None, Some(Technique::VpnApp))
    );
    // Unlisted, and not a name at all.
    assert_eq!(classify(&p, "example.org"), Default::default());
    assert_eq!(classify(&p, "<script>"), Default::default());
    assert_eq!(classify(&p, "8.8.8.8"), Default::default());
}

#[test]
fn bad_sections_and_techniques_are_refused_where_they_are() {
    let files = [
        (
            "social.txt",
            "[instagram]\ninstagram.com\n[Bad Name]\nx.com\n[]\n",
        ),
        ("youtube.txt", YOUTUBE),
        ("doh.txt", DOH),
        ("vpn.txt", VPN),
    ];
    let yaml = POLICY.replace("technique: vpn_app", "technique: vpn");
    let errors: Vec<String> =
        match Policy::from_yaml(&yaml, Path::new("/school/policy.yaml"), &lists(&files)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("/school/social.txt:3:1: `[Bad Name]` is not a section name"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("/school/social.txt:5:1: `[]`"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("/school/policy.yaml:8:")
            && errors[2].contains("unknown technique `vpn` (expected one of: external_dns, "),
        "{}",
        errors[2]
    );
}
