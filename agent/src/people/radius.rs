//! The RADIUS accounting listener (`gateway.radius`): what Wi-Fi controllers and 802.1X
//! switches send when someone signs in (`Start`), is still there (`Interim-Update`), signs
//! out (`Stop`), and when the controller restarts (`Accounting-On`/`Off`).
//!
//! A packet is believed only from a listed client and only when its Request Authenticator
//! checks with that client's shared secret ([`schoolgate_people::radius`]); anything else is
//! counted in `/metrics` by why, logged at most once a minute per client and reason, and left
//! unanswered (RFC 2866 §3: a request that fails the check is silently discarded). A repeat
//! of a request already taken (same client, identifier and authenticator, as a controller
//! resends when our answer is lost) is answered again without being applied twice.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use schoolgate_engine::policy::gateway::{Radius, RadiusClient};
use schoolgate_people::radius::{self, MAX_PACKET, RadiusError, Status};
use schoolgate_people::sessions::{Change, SignIn};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::sessions::LiveSessions;
use crate::reload::LivePolicy;
use crate::report::metrics::Metrics;

/// How long a request is remembered to recognise its repeats.
const REPEAT_WINDOW: Duration = Duration::from_secs(30);
/// Requests remembered at most, oldest forgotten first.
const MAX_REMEMBERED: usize = 65_536;
/// One log line per client and reason at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RadiusStartError {
    #[error("cannot read the RADIUS secret file {}: {source}", path.display())]
    Secret {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the RADIUS secret file {} is empty", path.display())]
    NoSecret { path: std::path::PathBuf },
    #[error("cannot listen for RADIUS on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A client and its secret, read at start.
#[derive(Debug)]
struct Client {
    network: ipnet::IpNet,
    secret: Vec<u8>,
}

/// What the listener needs, shared by its sockets.
#[derive(Debug)]
pub struct Listener {
    clients: Vec<Client>,
    sessions: Arc<LiveSessions>,
    live: Arc<LivePolicy>,
    metrics: Arc<Metrics>,
    state: std::sync::Mutex<State>,
}

/// A request as its repeats are recognised: the client, the identifier, the authenticator.
type RequestKey = (SocketAddr, u8, [u8; 16]);

#[derive(Debug, Default)]
struct State {
    /// Requests taken recently, with the answer sent and when.
    taken: HashMap<RequestKey, ([u8; radius::HEADER], Instant)>,
    order: VecDeque<RequestKey>,
    /// When each (client address, reason) was last logged.
    logged: HashMap<(IpAddr, &'static str), Instant>,
}

impl Listener {
    /// Reads every client's secret; binds nothing yet.
    pub fn new(
        config: &Radius,
        sessions: Arc<LiveSessions>,
        live: Arc<LivePolicy>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, RadiusStartError> {
        let clients = config
            .clients
            .iter()
            .map(|c: &RadiusClient| {
                Ok(Client {
                    network: c.network,
                    secret: secret(&c.secret_file)?,
                })
            })
            .collect::<Result<_, RadiusStartError>>()?;
        Ok(Arc::new(Self {
            clients,
            sessions,
            live,
            metrics,
            state: std::sync::Mutex::default(),
        }))
    }

    /// Binds `addr` (UDP).
    pub async fn bind(addr: SocketAddr) -> Result<UdpSocket, RadiusStartError> {
        UdpSocket::bind(addr)
            .await
            .map_err(|source| RadiusStartError::Bind { addr, source })
    }

    /// Serves one socket until the task is aborted.
    pub async fn serve(self: Arc<Self>, socket: UdpSocket) {
        let mut buf = vec![0; MAX_PACKET + 1];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "RADIUS receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let packet = buf.get(..n).unwrap_or_default();
            if let Some(answer) = self.take(packet, from, crate::clock::instant())
                && let Err(e) = socket.send_to(&answer, from).await
            {
                warn!(error = %e, client = %from, "cannot answer a RADIUS client");
            }
        }
    }

    /// One datagram from `from`: the answer to send, if any.
    pub fn take(
        &self,
        packet: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<[u8; radius::HEADER]> {
        let ip = from.ip().to_canonical();
        let Some(client) = self.clients.iter().find(|c| c.network.contains(&ip)) else {
            self.refused(
                ip,
                "unknown_client",
                "a RADIUS packet from an address not in gateway.radius.clients",
            );
            return None;
        };
        let request = match radius::parse_request(packet, &client.secret) {
            Ok(r) => r,
            Err(e) => {
                let reason = match e {
                    RadiusError::Authenticator => "bad_authenticator",
                    RadiusError::NotAccounting(_) => "not_accounting",
                    _ => "malformed",
                };
                self.refused(ip, reason, &e.to_string());
                return None;
            }
        };
        let key = (from, request.identifier, request.authenticator);
        {
            let state = self.state();
            if let Some((answer, at)) = state.taken.get(&key)
                && now.duration_since(*at) < REPEAT_WINDOW
            {
                let answer = *answer;
                drop(state);
                self.metrics.radius("repeat");
                return Some(answer);
            }
        }
        let result = self.apply(&request, ip);
        self.metrics.radius(result);
        self.metrics
            .sessions
            .set(i64::try_from(self.sessions.len()).unwrap_or(i64::MAX));
        let answer = radius::response(&request, &client.secret);
        let mut state = self.state();
        if state.order.len() >= MAX_REMEMBERED
            && let Some(old) = state.order.pop_front()
        {
            state.taken.remove(&old);
        }
        // Forget what is past the window as it reaches the front.
        while let Some(front) = state.order.front() {
            match state.taken.get(front) {
                Some((_, at)) if now.duration_since(*at) < REPEAT_WINDOW => break,
                _ => {
                    if let Some(old) = state.order.pop_front() {
                        state.taken.remove(&old);
                    }
                }
            }
        }
        state.order.push_back(key);
        state.taken.insert(key, (answer, now));
        Some(answer)
    }

    /// What an authentic request says, applied to the sessions; the metrics' result label.
    fn apply(&self, request: &radius::Accounting, from: IpAddr) -> &'static str {
        let source = format!(
            "radius {}",
            request.nas.clone().unwrap_or_else(|| from.to_string())
        );
        let policy = self.live.current();
        let now = crate::clock::now();
        if matches!(request.status, Status::AccountingOn | Status::AccountingOff) {
            let ended = self.sessions.reporter_restarted(&policy, &source);
            self.metrics.sessions_ended(&ended);
            info!(reporter = %source, ended = ended.len(), "a RADIUS client restarted: its sessions ended");
            return "restarted";
        }
        let Some(user) = request.user.as_deref() else {
            return "no_user";
        };
        let Some((username, known)) = self.sessions.username(user) else {
            self.refused(
                from,
                "bad_user",
                "a RADIUS User-Name that cannot be a username",
            );
            return "bad_user";
        };
        let addresses: Vec<IpAddr> = request
            .ipv4
            .map(IpAddr::from)
            .into_iter()
            .chain(request.ipv6.map(IpAddr::from))
            .collect();
        match request.status {
            Status::Start | Status::InterimUpdate => {
                if addresses.is_empty() {
                    return "no_address";
                }
                let changes = self.sessions.sign_in(
                    &policy,
                    SignIn {
                        username,
                        addresses,
                        device: None,
                        mac: request.mac,
                        source,
                        id: request.session.clone(),
                    },
                    now,
                );
                self.metrics.sessions_ended(&changes);
                if changes.iter().any(|c| matches!(c, Change::Full(_))) {
                    return "full";
                }
                if known { "signed_in" } else { "unknown_user" }
            }
            Status::Stop => {
                let ended = self
                    .sessions
                    .sign_out(&policy, &username, &addresses, &source);
                self.metrics.sessions_ended(&ended);
                "signed_out"
            }
            _ => "other",
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a refused packet and logs it, at most once a minute per client and reason.
    fn refused(&self, from: IpAddr, reason: &'static str, what: &str) {
        self.metrics.radius(reason);
        let now = crate::clock::instant();
        let mut state = self.state();
        let last = state.logged.get(&(from, reason));
        if last.is_none_or(|at| now.duration_since(*at) >= LOG_EVERY) {
            if state.logged.len() > 10_000 {
                state.logged.clear();
            }
            state.logged.insert((from, reason), now);
            drop(state);
            warn!(client = %from, reason, "RADIUS packet refused: {what}");
        }
    }
}

/// A shared secret: the first line of its file.
fn secret(path: &Path) -> Result<Vec<u8>, RadiusStartError> {
    super::first_line(path)
        .map_err(|source| RadiusStartError::Secret {
            path: path.to_owned(),
            source,
        })?
        .map(String::into_bytes)
        .ok_or_else(|| RadiusStartError::NoSecret {
            path: path.to_owned(),
        })
}
