//! Ordinary HTTPS against a TLS-wrapped proxy, both captured on loopback and judged by
//! `schoolgate-agent replay` (with and without the kernel filter): Chromium loading a page of
//! forty-odd resources over HTTP/2 and TLS 1.3, and again over HTTP/1.1 and TLS 1.2 (six
//! connections), and curl fetching several files on one connection each way, from nginx;
//! then curl's HTTPS carried through Trojan. Browsing must raise nothing at all; the
//! Trojan connection must be called a TLS-wrapped proxy, and the kernel filter must lose no
//! hello.
//!
//! Skipped, saying so, when a tool is not installed (`.ci/run` installs them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use schoolgate_tests::lab::{self, Lab, capture, eventually};
use schoolgate_tests::{require_lab, require_tools};

/// A class page: a style sheet, a script and forty images of growing size.
fn write_site(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut page = String::from(
        "<html><head><title>Class 4</title><link rel=stylesheet href=style.css>\
         <script src=app.js></script></head><body>",
    );
    for i in 0..40 {
        page.push_str(&format!("<img src=img{i}.svg alt={i}>"));
        std::fs::write(
            dir.join(format!("img{i}.svg")),
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"20\" height=\"20\">\
                 <text y=\"15\">{i}{}</text></svg>",
                "x".repeat(i * 37)
            ),
        )
        .unwrap();
    }
    page.push_str("</body></html>");
    std::fs::write(dir.join("index.html"), page).unwrap();
    std::fs::write(
        dir.join("style.css"),
        "body{font-family:sans-serif}".repeat(50),
    )
    .unwrap();
    std::fs::write(dir.join("app.js"), "var a=1;".repeat(300)).unwrap();
}

#[test]
fn browsing_is_not_a_tls_wrapped_proxy_and_trojan_is() {
    require_lab!();
    require_tools!(lab::missing_tool(&[
        "tcpdump", "nginx", "chromium", "trojan", "openssl", "curl"
    ]));
    let mut lab = Lab::up();
    let dir = lab.dir.path().to_owned();
    let d = dir.display();
    write_site(&dir.join("www"));
    let key = |name: &str| {
        let out = lab.exec(
            "inet",
            &[
                "sh",
                "-c",
                &format!(
                    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                     -subj /CN={name} -days 1 -keyout {d}/{name}.key -out {d}/{name}.pem 2>&1"
                ),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    key("site.lab");
    key("cdn.lab");
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/nginx.log;\n\
             events {{}}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
             fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             types {{ text/html html; image/svg+xml svg; text/css css; application/javascript js; }}\n\
             server {{ listen 127.0.0.1:8443 ssl http2; ssl_protocols TLSv1.3; root {d}/www;\n\
               ssl_certificate {d}/site.lab.pem; ssl_certificate_key {d}/site.lab.key; }}\n\
             server {{ listen 127.0.0.1:8444 ssl; ssl_protocols TLSv1.2; root {d}/www;\n\
               ssl_certificate {d}/site.lab.pem; ssl_certificate_key {d}/site.lab.key; }} }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("trojan-server.json"),
        format!(
            r#"{{"run_type": "server", "local_addr": "127.0.0.1", "local_port": 9443,
                "remote_addr": "127.0.0.1", "remote_port": 8444, "password": ["lab"],
                "ssl": {{"cert": "{d}/cdn.lab.pem", "key": "{d}/cdn.lab.key"}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("trojan-client.json"),
        r#"{"run_type": "client", "local_addr": "127.0.0.1", "local_port": 1082,
            "remote_addr": "127.0.0.1", "remote_port": 9443, "password": ["lab"],
            "ssl": {"verify": false, "verify_hostname": false, "sni": "cdn.lab"}}"#,
    )
    .unwrap();

    let capture = lab.path("browsing.pcap");
    capture::start(
        &mut lab,
        "inet",
        "lo",
        &capture,
        "tcp port 8443 or tcp port 8444 or tcp port 9443",
    );
    let conf = dir.join("nginx.conf");
    lab.spawn("inet", "nginx", &["nginx", "-c", conf.to_str().unwrap()]);
    let trojan = |role: &str| dir.join(format!("trojan-{role}.json"));
    lab.spawn(
        "inet",
        "trojan-server",
        &["trojan", "-c", trojan("server").to_str().unwrap()],
    );
    lab.spawn(
        "inet",
        "trojan-client",
        &["trojan", "-c", trojan("client").to_str().unwrap()],
    );
    let get = |script: &str| {
        let out = lab.exec("inet", &["sh", "-c", script]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        eventually(5, || get(
            "curl -sk -o /dev/null -w %{http_code} https://127.0.0.1:8444/"
        ) == "200"),
        "nginx did not start: {}",
        lab.log("nginx")
    );
    for port in [8443, 8444] {
        let dom = get(&format!(
            "timeout 60 chromium --headless --no-sandbox --disable-gpu --ignore-certificate-errors \
             --user-data-dir={d}/chromium-{port} --dump-dom https://127.0.0.1:{port}/index.html 2>/dev/null"
        ));
        assert!(dom.contains("img39.svg"), "Chromium on {port}: {dom}");
    }
    let many = "https://127.0.0.1:PORT/index.html https://127.0.0.1:PORT/img1.svg \
                https://127.0.0.1:PORT/style.css https://127.0.0.1:PORT/app.js";
    let versions = get(&format!(
        "curl -sk --http2 -w '%{{http_version}} ' -o /dev/null -o /dev/null -o /dev/null -o /dev/null {} ; \
         curl -sk --http1.1 -w '%{{http_version}} ' -o /dev/null -o /dev/null -o /dev/null -o /dev/null {}",
        many.replace("PORT", "8443"),
        many.replace("PORT", "8444")
    ));
    assert_eq!(versions.trim(), "2 2 2 2 1.1 1.1 1.1 1.1");
    assert!(
        eventually(5, || get(
            "curl -sk -o /dev/null -w %{http_code} --socks5-hostname 127.0.0.1:1082 \
             https://127.0.0.1:8444/index.html"
        ) == "200"),
        "nothing through Trojan: {}{}",
        lab.log("trojan-client"),
        lab.log("trojan-server")
    );
    capture::stop(&mut lab);

    std::fs::write(lab.path("policy.yaml"), capture::LOOPBACK_POLICY).unwrap();
    let mut hellos_by_mode = Vec::new();
    for filter in [false, true] {
        let seen = capture::replay(&lab.path("policy.yaml"), &capture, filter);
        // Chromium's page opens one connection over HTTP/2 and several over HTTP/1.1; with
        // curl's, Trojan's own and the Trojan server's to nginx, at least ten TLS hellos.
        let mut hellos: Vec<String> = seen
            .iter()
            .filter(|o| o["ja4"].is_string())
            .map(|o| o["client"].to_string())
            .collect();
        hellos.sort();
        assert!(
            hellos.len() >= 10,
            "{} TLS hellos (filter: {filter}): {seen:#?}",
            hellos.len()
        );
        hellos_by_mode.push(hellos);
        let alarms: Vec<&serde_json::Value> =
            seen.iter().filter(|o| !o["technique"].is_null()).collect();
        assert_eq!(alarms.len(), 1, "(filter: {filter}) {alarms:#?}");
        assert_eq!(alarms[0]["technique"], "tls_proxy", "{:#?}", alarms[0]);
        assert_eq!(alarms[0]["server"], "127.0.0.1:9443", "{:#?}", alarms[0]);
    }
    // The kernel filter loses no hello: Chromium's resumed TLS 1.2 sessions (no SNI, no
    // certificate) once went unjudged behind it.
    assert_eq!(hellos_by_mode[0], hellos_by_mode[1]);
}
