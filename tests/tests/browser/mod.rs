//! Chromium for the end-to-end tests: chromedriver (and the Chromium it starts) on the staff
//! laptop of the namespace lab, driven from the test process through `lab-peer relay` (a
//! Unix socket, which crosses namespaces); the steps the tests take on the console's pages;
//! screenshots in `target/browser/`.
// Each test file that includes this module uses some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use schoolgate_tests::lab::{Lab, STAFF, eventually};

/// Where the screenshots go: `target/browser/`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Headless Chromium with a fresh profile, accepting the console's self-signed certificate,
/// and quiet: no QUIC, no background requests, no first-run pages.
pub(crate) fn capabilities(profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), true.into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    caps
}

/// The element `css` finds on the page, waiting up to 10 s for it: after a form is
/// submitted, the next page may not have arrived when the test asks.
pub(crate) async fn element(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("nothing matches {css}: {e}"))
}

/// The text of the element `css` finds.
pub(crate) async fn text_of(c: &Client, css: &str) -> String {
    element(c, css).await.text().await.unwrap()
}

pub(crate) async fn click(c: &Client, css: &str) {
    element(c, css).await.click().await.unwrap();
}

/// Waits up to 10 s for the page to hold an element `css` finds.
pub(crate) async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"));
}

/// Signs in to the console at `console` (address and port).
pub(crate) async fn sign_in_at(c: &Client, console: &str, name: &str, password: &str) {
    c.goto(&format!("https://{console}/login")).await.unwrap();
    element(c, "input[name=username]")
        .await
        .send_keys(name)
        .await
        .unwrap();
    element(c, "input[name=password]")
        .await
        .send_keys(password)
        .await
        .unwrap();
    click(c, "form[action='/login'] button").await;
    // Signed in: the page has the sign-out form.
    wait_for(c, "form[action='/logout']").await;
}

pub(crate) async fn sign_out(c: &Client) {
    click(c, "form[action='/logout'] button").await;
    wait_for(c, "input[name=username]").await;
}

/// Fills the alert page's form whose action ends in `action`: `field` gets `value` (typed,
/// or chosen when it is a list), then the form's button is pressed and the page that comes
/// back must confirm with `confirmation`.
pub(crate) async fn submit(c: &Client, action: &str, field: &str, value: &str, confirmation: &str) {
    let form = format!("form[action$='/{action}']");
    let input = element(c, &format!("{form} [name={field}]")).await;
    if input.tag_name().await.unwrap() == "select" {
        input.select_by_value(value).await.unwrap();
    } else {
        input.send_keys(value).await.unwrap();
    }
    click(c, &format!("{form} button")).await;
    // The confirmation of the previous action may still be on screen until the new page
    // arrives: wait for this one's own words.
    let mut shown = String::new();
    for _ in 0..100 {
        if let Ok(p) = c.find(Locator::Css("p.done")).await {
            shown = p.text().await.unwrap_or_default();
            if shown == confirmation {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{action}: the page said {shown:?}, not {confirmation:?}");
}

/// Chromium on the staff laptop, driven from here: chromedriver (and the Chromium it
/// starts) on the staff host, reached through `lab-peer relay`.
pub(crate) fn start_browser(lab: &mut Lab, runtime: &tokio::runtime::Runtime) -> Client {
    let peer = schoolgate_tests::lab::workspace_bin("lab-peer");
    let socket = lab.path("chromedriver.sock");
    lab.spawn(STAFF.name, "chromedriver", &["chromedriver", "--port=9515"]);
    lab.spawn(
        STAFF.name,
        "relay",
        &[
            peer.to_str().unwrap(),
            "relay",
            socket.to_str().unwrap(),
            "127.0.0.1:9515",
        ],
    );
    assert!(
        eventually(10, || lab
            .log("chromedriver")
            .contains("started successfully")
            && socket.exists()),
        "chromedriver did not start: {}{}",
        lab.log("chromedriver"),
        lab.log("relay")
    );
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let driver = listener.local_addr().unwrap();
        tokio::spawn(schoolgate_tests::lab::forward(listener, socket.clone()));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&lab.path("chromium-profile")))
            .connect(&format!("http://{driver}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start Chromium: {e}\n{}", lab.log("chromedriver")))
    })
}
