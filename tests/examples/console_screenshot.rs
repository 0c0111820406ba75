//! Takes the README's picture of the console: signs in to a running demonstration's console
//! with headless Chromium (through a chromedriver already listening) and saves the incident list
//! as a PNG.
//!
//! ```sh
//! chromedriver --port=9515 &
//! cargo run -p schoolgate-tests --example console_screenshot -- \
//!     http://127.0.0.1:9515 https://127.0.0.1:8443 dsl PASSWORD docs/demo-console.png
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [driver, console, user, password, out] = args.as_slice() else {
        eprintln!("usage: console_screenshot DRIVER_URL CONSOLE_URL USER PASSWORD OUT.png");
        std::process::exit(2);
    };
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), true.into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--window-size=1280,760", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let c = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("cannot reach chromedriver");
    c.goto(&format!("{console}/login")).await.unwrap();
    for (field, value) in [("username", user), ("password", password)] {
        c.find(Locator::Css(&format!("input[name={field}]")))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    c.find(Locator::Css("form[action='/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("form[action='/logout']"))
        .await
        .expect("not signed in");
    c.goto(&format!("{console}/alerts")).await.unwrap();
    std::fs::write(out, c.screenshot().await.unwrap()).unwrap();
    c.close().await.unwrap();
    eprintln!("saved {out}");
}
