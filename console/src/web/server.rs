//! The console's connections are served by `schoolgate-serve`; these tests meet a real
//! console on loopback with slow and idle clients.

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    //! A real server on loopback, met by slow and idle clients.

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::http::StatusCode;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpSocket, TcpStream};

    use crate::db::testing;
    use crate::web::tests::Console;
    use schoolgate_serve::{Limits, catch_panic, serve};

    const TOKEN: &str = "sga_test_token";

    /// A console served on 127.0.0.1 within `limits`, with an agent `gw1`.
    async fn console(limits: Limits) -> (SocketAddr, Console, Option<tempfile::TempDir>) {
        let (db, dir) = testing::each().await.into_iter().next().unwrap();
        db.add_agent("gw1", &crate::auth::token_hash(TOKEN), 1)
            .await
            .unwrap();
        let c = Console::new(db).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = crate::web::router(Arc::clone(&c.app));
        tokio::spawn(serve(
            listener,
            router,
            None,
            limits,
            Arc::from([]),
            std::future::pending(),
        ));
        (addr, c, dir)
    }

    /// A connection from `source` (any 127/8 address is this machine's).
    async fn connect(source: &str, to: SocketAddr) -> TcpStream {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(format!("{source}:0").parse().unwrap()).unwrap();
        s.connect(to).await.unwrap()
    }

    /// Whether the server closes `s` within `within` (reads to the end, ignoring what it
    /// says first).
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 4096];
        let read_all = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, read_all).await.is_ok()
    }

    /// The whole answer to one request on a fresh connection from 127.0.0.1.
    async fn ask(to: SocketAddr, request: &str) -> String {
        let mut s = connect("127.0.0.1", to).await;
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn half_sent_requests_neither_stay_nor_crowd_out_others() {
        let limits = Limits {
            head: Duration::from_millis(1500),
            request: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            connections: 64,
            per_address: 8,
            http2: false,
        };
        let (addr, _c, _dir) = console(limits).await;
        let mut slow = Vec::new();
        for _ in 0..20 {
            let mut s = connect("127.0.0.2", addr).await;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: console\r\nX-Slow: ")
                .await
                .unwrap();
            slow.push(s);
        }
        // Others are answered at once.
        let started = Instant::now();
        let answer = ask(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() < Duration::from_millis(1000));
        // Past the per-address limit, closed at once (accepted in the order they came);
        // the first eight when their head is late.
        let (kept, over) = slow.split_at_mut(8);
        for s in over {
            assert!(closed_within(s, Duration::from_millis(500)).await);
        }
        assert!(!closed_within(&mut kept[0], Duration::from_millis(10)).await);
        for s in kept {
            assert!(closed_within(s, Duration::from_millis(2500)).await);
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500() {
        use tower::ServiceExt;
        let router: Router = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    let mut s = "é".repeat(3);
                    s.truncate(1);
                    s
                }),
            )
            .layer(axum::middleware::from_fn(catch_panic));
        let req = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = router.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let limits = Limits {
            idle: Duration::from_millis(400),
            ..Limits::default()
        };
        let (addr, _c, _dir) = console(limits).await;
        let mut s = connect("127.0.0.1", addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: console\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        // Kept alive, then nothing more: closed.
        assert!(closed_within(&mut s, Duration::from_millis(3000)).await);
    }

    #[tokio::test]
    async fn the_agents_api_reads_no_body_without_a_token_and_a_stalled_one_times_out() {
        let limits = Limits {
            request: Duration::from_millis(500),
            ..Limits::default()
        };
        let (addr, _c, _dir) = console(limits).await;
        // A promised 2 MB from someone without a token: refused before any of it is read.
        for auth in ["", "Authorization: Bearer sga_wrong\r\n"] {
            let mut s = connect("127.0.0.1", addr).await;
            let head = format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: console\r\n{auth}\
                 Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{{\"agent\""
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .expect("answered before the body came")
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 401"), "{auth}");
        }
        // An agent that stops sending its body is answered 408 at the request limit.
        let mut s = connect("127.0.0.1", addr).await;
        let head = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: console\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"agent\""
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 408"));
        // A body larger than a batch may be is refused.
        let big = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: console\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n",
            crate::web::api::MAX_BODY + 1
        );
        let mut s = connect("127.0.0.1", addr).await;
        s.write_all(big.as_bytes()).await.unwrap();
        let chunk = vec![b' '; 1 << 16];
        for _ in 0..80 {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        assert!(
            out.starts_with(b"HTTP/1.1 413"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}
