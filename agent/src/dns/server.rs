//! The resolver's sockets: UDP and TCP on every listen address, IPv4 and IPv6.
//!
//! Each request is rate-limited per client, planned by [`plan`](super::plan::plan) against the
//! policy in force, and answered directly or after asking the upstream resolvers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record};
use jiff::Timestamp;
use schoolgate_engine::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, info, warn};

use super::plan::{Plan, Request, Settings, answer, plan};
use super::ratelimit::RateLimiter;
use super::upstream::Upstream;
use crate::reload::LivePolicy;

/// A UDP answer without EDNS may be at most this long (RFC 1035).
const UDP_PLAIN_MAX: usize = 512;
/// The most we send over UDP even when a client offers more, to avoid fragmentation.
const UDP_EDNS_MAX: usize = 1232;
/// A TCP connection with nothing to say for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Everything a request needs, shared by every listener.
#[derive(Debug)]
pub struct Resolver {
    pub live: Arc<LivePolicy>,
    pub settings: Settings,
    pub upstream: Upstream,
    limiter: Mutex<RateLimiter>,
}

impl Resolver {
    pub fn new(
        live: Arc<LivePolicy>,
        settings: Settings,
        upstream: Upstream,
        rate_limit: u32,
    ) -> Self {
        Self {
            live,
            settings,
            upstream,
            limiter: Mutex::new(RateLimiter::new(rate_limit)),
        }
    }

    /// Answers one request from `peer`; `None` means send nothing.
    pub async fn handle(&self, bytes: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let ip = peer.ip().to_canonical();
        let allowed = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(ip, Instant::now());
        if !allowed {
            debug!(%ip, "rate limited");
            return None;
        }
        let policy = self.live.current();
        // The MAC comes from the neighbour table once the daemon learns it.
        let client = Client::new(ip, None);
        match plan(
            bytes,
            &client,
            false,
            &policy,
            &self.settings,
            Timestamp::now(),
        ) {
            Plan::Reply { bytes, blocked } => {
                if let Some(b) = blocked {
                    info!(client = %ip, name = %b.name, rule = b.rule.as_deref().unwrap_or("-"), "blocked");
                }
                Some(bytes)
            }
            Plan::Forward { request, strip_ech } => {
                let name = request.query.name().clone();
                self.forward(&request, name, None, strip_ech).await
            }
            Plan::Rewrite { request, target } => {
                let cname = Record::from_rdata(
                    request.query.name().clone(),
                    300,
                    RData::CNAME(CNAME(target.clone())),
                );
                self.forward(&request, target, Some(cname), false).await
            }
            Plan::Drop => None,
        }
    }
}

impl Resolver {
    /// Asks upstream for `name` (the request's own name, or a safe-search target) and answers
    /// `request` with `first` (the rewrite's CNAME), then the upstream's records; SERVFAIL if
    /// the upstreams fail.
    async fn forward(
        &self,
        request: &Request,
        name: Name,
        first: Option<Record>,
        strip_ech: bool,
    ) -> Option<Vec<u8>> {
        let message = match self.upstream.resolve(name, request.qtype()).await {
            Ok(r) => {
                let records = first.into_iter().chain(r.answers).collect();
                let mut m = answer(request, r.code, records, strip_ech);
                m.insert_authorities(r.authorities);
                m
            }
            Err(e) => {
                warn!(error = %e, "upstream failed");
                answer(request, ResponseCode::ServFail, Vec::new(), false)
            }
        };
        message.to_vec().ok()
    }
}

/// Serves UDP on `socket` until the task is dropped.
pub async fn serve_udp(socket: UdpSocket, resolver: Arc<Resolver>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "udp receive");
                continue;
            }
        };
        let Some(request) = buf.get(..n).map(<[u8]>::to_vec) else {
            continue;
        };
        let socket = Arc::clone(&socket);
        let resolver = Arc::clone(&resolver);
        tokio::spawn(async move {
            if let Some(response) = resolver.handle(&request, peer).await {
                let response = fit_udp(&request, response);
                if let Err(e) = socket.send_to(&response, peer).await {
                    debug!(%peer, error = %e, "udp send");
                }
            }
        });
    }
}

/// Serves TCP on `listener` until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let resolver = Arc::clone(&resolver);
                tokio::spawn(async move {
                    if let Err(e) = tcp_connection(stream, peer, resolver).await {
                        debug!(%peer, error = %e, "tcp connection");
                    }
                });
            }
            Err(e) => warn!(error = %e, "tcp accept"),
        }
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    resolver: Arc<Resolver>,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        let mut request = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(response) = resolver.handle(&request, peer).await else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(response.len()) else {
            return Ok(());
        };
        stream.write_u16(len).await?;
        stream.write_all(&response).await?;
    }
}

/// Makes a response fit in one UDP datagram for this client: too long, and it is replaced by a
/// truncated one (TC set) so the client asks again over TCP.
fn fit_udp(request: &[u8], response: Vec<u8>) -> Vec<u8> {
    // Every client takes 512 bytes: only a longer answer needs the request's EDNS size.
    if response.len() <= UDP_PLAIN_MAX {
        return response;
    }
    let limit = match Message::from_vec(request).ok().and_then(|m| m.edns) {
        Some(edns) => usize::from(edns.max_payload()).clamp(UDP_PLAIN_MAX, UDP_EDNS_MAX),
        None => UDP_PLAIN_MAX,
    };
    if response.len() <= limit {
        return response;
    }
    match Message::from_vec(&response) {
        Ok(m) => m.truncate().to_vec().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Binds UDP and TCP on every address. With port 0, TCP takes the port UDP was given.
pub async fn bind(
    addrs: &[SocketAddr],
) -> std::io::Result<Vec<(SocketAddr, UdpSocket, TcpListener)>> {
    let mut out = Vec::new();
    for addr in addrs {
        let udp = UdpSocket::bind(addr).await?;
        let bound = udp.local_addr()?;
        let tcp = TcpListener::bind(bound).await?;
        out.push((bound, udp, tcp));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::RecordType;

    fn request(edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("big.example.").unwrap(),
            RecordType::TXT,
        ));
        m.edns = edns.map(|size| {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e
        });
        m.to_vec().unwrap()
    }

    fn response(n_records: usize) -> Vec<u8> {
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        let name = Name::from_ascii("big.example.").unwrap();
        for i in 0..n_records {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32);
            m.add_answer(Record::from_rdata(name.clone(), 60, RData::A(ip.into())));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn udp_answers_fit_the_client() {
        let small = response(5);
        assert!(small.len() <= UDP_PLAIN_MAX);
        assert_eq!(fit_udp(&request(None), small.clone()), small);
        // About 750 bytes: too long without EDNS, fine with it.
        let medium = response(45);
        assert!(medium.len() > UDP_PLAIN_MAX && medium.len() < UDP_EDNS_MAX);
        let cut = Message::from_vec(&fit_udp(&request(None), medium.clone())).unwrap();
        assert!(cut.metadata.truncation && cut.answers.is_empty());
        assert_eq!(fit_udp(&request(Some(4096)), medium.clone()), medium);
        // A client offering more than 1232 still gets at most 1232.
        let large = response(100);
        let cut = Message::from_vec(&fit_udp(&request(Some(4096)), large)).unwrap();
        assert!(cut.metadata.truncation);
    }
}
