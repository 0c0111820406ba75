//! The daemon: settings from the policy's `gateway:` section with command-line overrides, and
//! the services started from them until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use schoolgate_engine::Policy;
use schoolgate_engine::policy::gateway::{
    BlockResponse, DEFAULT_RATE_LIMIT, DEFAULT_STATE_DIR, Defences,
};
use tracing::info;

use crate::dns::plan::Settings;
use crate::dns::server::{Resolver, bind, serve_tcp, serve_udp};
use crate::dns::upstream::{Upstream, UpstreamError};
use crate::reload::LivePolicy;

/// What the command line says over the policy's `gateway:` section.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub dns_listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub state_dir: Option<PathBuf>,
}

/// The daemon's settings once policy and flags are combined.
#[derive(Debug, Clone)]
pub struct Config {
    pub dns_listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub resolver: Settings,
    pub rate_limit: u32,
    pub state_dir: PathBuf,
}

/// Why the daemon cannot start or stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("no DNS listen address (set gateway.dns.listen or --dns-listen)")]
    NoListen,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Combines the policy's gateway section with the command line; flags win.
    pub fn new(policy: &Policy, overrides: &Overrides) -> Result<Self, DaemonError> {
        let gateway = policy.gateway();
        let pick = |flag: &Vec<SocketAddr>, policy: Option<&Vec<SocketAddr>>| {
            if flag.is_empty() {
                policy.cloned().unwrap_or_default()
            } else {
                flag.clone()
            }
        };
        let dns_listen = pick(&overrides.dns_listen, gateway.map(|g| &g.dns.listen));
        if dns_listen.is_empty() {
            return Err(DaemonError::NoListen);
        }
        let upstreams = pick(&overrides.upstreams, gateway.map(|g| &g.dns.upstreams));
        if upstreams.is_empty() {
            return Err(UpstreamError::NoServers.into());
        }
        let block_page = gateway.and_then(|g| g.block_page.as_ref());
        let resolver = Settings {
            // Without a block page there is nowhere to point a sinkhole.
            block_response: match (gateway, block_page) {
                (Some(g), Some(_)) => g.dns.block_response,
                _ => BlockResponse::Nxdomain,
            },
            defences: gateway.map_or_else(Defences::default, |g| g.dns.defences),
            sinkhole_v4: block_page.and_then(|b| b.ipv4()),
            sinkhole_v6: block_page.and_then(|b| b.ipv6()),
        };
        let state_dir = overrides
            .state_dir
            .clone()
            .or_else(|| gateway.map(|g| g.state_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok(Self {
            dns_listen,
            upstreams,
            resolver,
            rate_limit: gateway.map_or(DEFAULT_RATE_LIMIT, |g| g.dns.rate_limit),
            state_dir,
        })
    }
}

/// Runs the services until `shutdown` completes. `on_ready` hears the bound DNS addresses.
pub async fn run(
    live: Arc<LivePolicy>,
    config: Config,
    on_ready: impl FnOnce(&[SocketAddr]),
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    let upstream = Upstream::new(&config.upstreams)?;
    let resolver = Arc::new(Resolver::new(
        live,
        config.resolver,
        upstream,
        config.rate_limit,
    ));
    let sockets = bind(&config.dns_listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: format!("{:?}", config.dns_listen),
            source,
        })?;
    let bound: Vec<SocketAddr> = sockets.iter().map(|(a, _, _)| *a).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, udp, tcp) in sockets {
        info!(%addr, "dns listening (udp, tcp)");
        tasks.spawn(serve_udp(udp, Arc::clone(&resolver)));
        tasks.spawn(serve_tcp(tcp, Arc::clone(&resolver)));
    }
    on_ready(&bound);
    shutdown.await;
    info!("stopping");
    tasks.shutdown().await;
    Ok(())
}
