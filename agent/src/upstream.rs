//! Asking the upstream resolvers for allowed names, through hickory-resolver, whose cache
//! honours the records' TTLs.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};

/// How many answers the upstream cache keeps.
const CACHE_SIZE: u64 = 32_768;

/// Why the upstream resolvers could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("no upstream resolvers configured (set gateway.dns.upstreams or --upstream)")]
    NoServers,
    #[error("cannot set up the upstream resolvers {servers:?}: {source}")]
    Build {
        servers: Vec<SocketAddr>,
        #[source]
        source: NetError,
    },
    #[error("upstream lookup of {name} {rtype} failed: {source}")]
    Lookup {
        name: String,
        rtype: RecordType,
        #[source]
        source: NetError,
    },
}

pub use schoolgate_gateway::dns::cache::Resolved;

/// The upstream resolvers.
#[derive(Clone)]
pub struct Upstream {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    /// Resolvers at `servers`, asked over UDP with TCP when an answer is truncated.
    pub fn new(servers: &[SocketAddr]) -> Result<Self, UpstreamError> {
        if servers.is_empty() {
            return Err(UpstreamError::NoServers);
        }
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
        let opts = builder.options_mut();
        // Names arrive fully qualified from clients: no search list, no hosts file.
        opts.ndots = 0;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        opts.cache_size = CACHE_SIZE;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // Keep CNAME chains so clients see the names their answer went through.
        opts.preserve_intermediates = true;
        let resolver = builder.build().map_err(|source| UpstreamError::Build {
            servers: servers.to_vec(),
            source,
        })?;
        Ok(Self { resolver })
    }

    /// Resolves `name`/`rtype`. A name that does not exist, or has no records of that type,
    /// is an answer (NXDOMAIN, or NOERROR with no records), not an error.
    pub async fn resolve(&self, name: Name, rtype: RecordType) -> Result<Resolved, UpstreamError> {
        match self.resolver.lookup(name.clone(), rtype).await {
            Ok(lookup) => Ok(Resolved {
                code: ResponseCode::NoError,
                answers: lookup.answers().to_vec(),
                authorities: Vec::new(),
            }),
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Ok(Resolved {
                code: none.response_code,
                answers: Vec::new(),
                authorities: none
                    .soa
                    .map(|soa| vec![soa.into_record_of_rdata()])
                    .unwrap_or_default(),
            }),
            Err(source) => Err(UpstreamError::Lookup {
                name: name.to_ascii(),
                rtype,
                source,
            }),
        }
    }
}
