//! The feeds `policy.yaml` shows in comments (harmful-content categories from public lists,
//! Tor's relays) are a valid policy once uncommented, each read as the feed it says, so a
//! school that uncomments them gets what the comment promises.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

use schoolgate_engine::Policy;
use schoolgate_engine::policy::feed::FeedFormat;

/// `policy.yaml` with the commented category and feed examples turned on: a commented line
/// whose text is YAML (`  # adult:`, `  #   feeds:`, `    # feeds:`…) from the first
/// example to the first line that is not.
fn uncommented() -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.yaml"))
            .unwrap();
    let mut out = Vec::new();
    let mut on = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start().strip_prefix("# ");
        let starts = matches!(body, Some("adult:") | Some("feeds:"));
        if starts {
            on = true;
        }
        // YAML, not prose: a list item or a lower-case key.
        let yaml = body.is_some_and(|b| {
            let b = b.trim_start();
            b.starts_with("- ")
                || b.split_once(':').is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        });
        match body {
            Some(code) if on && yaml => out.push(format!("{}{code}", " ".repeat(indent))),
            _ => {
                on = false;
                out.push(line.to_owned());
            }
        }
    }
    out.join("\n")
}

#[test]
fn the_shipped_feed_examples_are_valid_when_uncommented() {
    let text = uncommented();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The lists beside policy.yaml; feeds' copies are not fetched here.
    let read = |p: &Path| std::fs::read_to_string(p);
    let (policy, _) = Policy::from_yaml_with(&text, &dir.join("policy.yaml"), &read, None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let feeds = policy.feeds();
    let by = |category: &str| -> Vec<FeedFormat> {
        feeds
            .iter()
            .filter(|f| f.category == category)
            .map(|f| f.format)
            .collect()
    };
    assert_eq!(by("adult"), [FeedFormat::Ut1]);
    assert_eq!(by("gambling"), [FeedFormat::Ut1, FeedFormat::Hosts]);
    assert_eq!(by("violence"), [FeedFormat::Ut1]);
    assert_eq!(by("malware"), [FeedFormat::Hosts, FeedFormat::Ut1]);
    assert_eq!(by("tor"), [FeedFormat::Onionoo, FeedFormat::Domains]);
    assert!(feeds.iter().all(|f| f.url.starts_with("https://")));
    assert!(
        feeds
            .iter()
            .all(|f| f.cache.starts_with("/var/lib/schoolgate/feeds"))
    );
}
