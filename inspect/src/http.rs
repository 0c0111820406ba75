//! HTTP/1 requests: the request line and the `Host` header, read from the first bytes a
//! client sends. A `CONNECT host:port` request, or a request whose target is an absolute
//! URL (`GET http://example.com/`), is the form only proxies are sent: the device is using
//! an HTTP proxy.

use crate::tls::MAX_NAME;

/// The most bytes of a request head read before giving up on finding its `Host`.
pub const MAX_HEAD: usize = 4096;

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// What the start of a TCP stream says, read as HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Request(Request),
    /// A request line has begun; more bytes are needed.
    Incomplete,
    NotHttp,
}

/// The parts of a request inspection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `CONNECT`, or a request in absolute form: sent to a proxy.
    pub proxy: bool,
    pub method: &'static str,
    /// The host asked for, lower-cased, port removed: from `Host`, or the CONNECT target
    /// or absolute URL where those name it.
    pub host: Option<String>,
}

/// Reads an HTTP request from the start of a client's stream.
pub fn request(stream: &[u8]) -> Parsed {
    let Some(&method) = METHODS
        .iter()
        .find(|m| stream.starts_with(m.as_bytes()) && stream.get(m.len()) == Some(&b' '))
    else {
        // Too short to tell yet, if every byte so far could begin a method.
        let could_be = !stream.is_empty()
            && stream.len() < 8
            && METHODS.iter().any(|m| m.as_bytes().starts_with(stream));
        return if could_be {
            Parsed::Incomplete
        } else {
            Parsed::NotHttp
        };
    };
    let head = stream.get(..stream.len().min(MAX_HEAD)).unwrap_or_default();
    let Some(line_end) = head.windows(2).position(|w| w == b"\r\n") else {
        return if stream.len() >= MAX_HEAD {
            Parsed::NotHttp
        } else {
            Parsed::Incomplete
        };
    };
    let line = head.get(..line_end).unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (_, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(target), Some(version)) = (target, version) else {
        return Parsed::NotHttp;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Parsed::NotHttp;
    }
    let connect = method == "CONNECT";
    let absolute = target
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"http://"));
    let from_target = if connect {
        host_of(target)
    } else if absolute {
        target
            .get(7..)
            .and_then(|rest| host_of(rest.split(|b| *b == b'/').next().unwrap_or_default()))
    } else {
        None
    };
    let headers = head.get(line_end + 2..).unwrap_or_default();
    let mut host_header = None;
    let mut complete = false;
    // Only whole lines: the piece after the last newline is still arriving.
    let mut lines = headers.split(|b| *b == b'\n').collect::<Vec<_>>();
    lines.pop();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            complete = true;
            break;
        }
        if let Some(colon) = line.iter().position(|b| *b == b':')
            && line
                .get(..colon)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"host"))
        {
            host_header = line.get(colon + 1..).and_then(|v| host_of(v.trim_ascii()));
            complete = true;
            break;
        }
    }
    if !complete && from_target.is_none() && stream.len() < MAX_HEAD {
        return Parsed::Incomplete;
    }
    Parsed::Request(Request {
        proxy: connect || absolute,
        method,
        host: from_target.or(host_header),
    })
}

/// The host part of `host`, `host:port` or `[v6]:port`, if it is a plausible name or address.
fn host_of(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let host = if let Some(v6) = text.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        text.rsplit_once(':').map_or(text, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                text
            }
        })
    };
    let ok = !host.is_empty()
        && host.len() <= MAX_NAME
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    ok.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(proxy: bool, method: &'static str, host: Option<&str>) -> Parsed {
        Parsed::Request(Request {
            proxy,
            method,
            host: host.map(str::to_owned),
        })
    }

    #[test]
    fn host_connect_and_absolute_form() {
        let get = b"GET /p/abc HTTP/1.1\r\nUser-Agent: x\r\nHost: WWW.Instagram.com:80\r\n\r\n";
        assert_eq!(request(get), req(false, "GET", Some("www.instagram.com")));
        let connect = b"CONNECT apache.org:443 HTTP/1.1\r\nHost: apache.org:443\r\n\r\n";
        assert_eq!(request(connect), req(true, "CONNECT", Some("apache.org")));
        let absolute = b"GET http://example.com:8080/x HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(request(absolute), req(true, "GET", Some("example.com")));
        let v6 = b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n";
        assert_eq!(request(v6), req(true, "CONNECT", Some("2001:db8::1")));
        let no_host = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(request(no_host), req(false, "GET", None));
    }

    #[test]
    fn partial_requests_wait_and_other_bytes_are_not_http() {
        assert_eq!(request(b"GE"), Parsed::Incomplete);
        assert_eq!(
            request(b"GET / HTTP/1.1\r\nAccept: */*\r\n"),
            Parsed::Incomplete
        );
        assert_eq!(request(b"GET /"), Parsed::Incomplete);
        assert_eq!(request(b"\x16\x03\x01\x02\x00"), Parsed::NotHttp);
        assert_eq!(request(b"SSH-2.0-OpenSSH_9.6\r\n"), Parsed::NotHttp);
        assert_eq!(request(b"GET / SPDY/3\r\n\r\n"), Parsed::NotHttp);
        assert_eq!(request(b""), Parsed::NotHttp);
        let hostile = b"GET / HTTP/1.1\r\nHost: <script>alert(1)</script>\r\n\r\n";
        assert_eq!(request(hostile), req(false, "GET", None));
        let mut long = b"GET / HTTP/1.1\r\n".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(request(&long), req(false, "GET", None));
    }
}
