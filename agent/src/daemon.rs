//! The daemon: settings from the policy's `gateway:` section with command-line overrides, and
//! the services started from them until told to stop.
//!
//! [`run`] starts each service with a function of its own and stops them in the reverse
//! order: reporting (the journal, its writer and the shippers, so every later step can
//! report), who-is-who (neighbour table, DHCP leases), the firewall (with the quarantines put
//! back), NFLOG, release requests, inspection, the policy watch, the firewall's learner, DNS,
//! the block page, metrics, the event ticker. Reporting stops last: the pending aggregated
//! events are flushed and `agent_stopped` is written last.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use schoolgate_engine::Policy;
use schoolgate_engine::policy::gateway::{
    BlockResponse, DEFAULT_RATE_LIMIT, DEFAULT_STATE_DIR, Defences, LeaseFile, OnStop,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::act::quarantine::Quarantine;
use crate::act::{self, Actor, Attempt};
use crate::blockpage;
use crate::clients::Directory;
use crate::dns::server::{Resolver, bind, serve_tcp, serve_udp};
use crate::firewall::learner::{self, Learner};
use crate::firewall::nft::{Nft, NftError};
use crate::firewall::{Firewall, nflog};
use crate::people::sessions::LiveSessions;
use crate::people::{self, LivePeople};
use crate::reload::{self, LivePolicy};
use crate::report::events::{Event, Events, Kind, Severity, bounded};
use crate::report::journal::{self, Journal};
use crate::report::metrics::Metrics;
use crate::report::writer::write_all;
use crate::shared::Shared;
use crate::upstream::{Upstream, UpstreamError};
use crate::watch::watch_files;
use schoolgate_gateway::dns::plan::Settings;
use schoolgate_gateway::events::aggregate::Aggregator;

/// How soon after the last change to a watched file it is read again.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the whole neighbour table is read, besides following its changes.
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(60);

/// What the command line says over the policy's `gateway:` section.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub dns_listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    /// Leave the firewall alone (`--no-firewall`).
    pub no_firewall: bool,
    /// Do not read the LAN interfaces' traffic (`--no-inspection`).
    pub no_inspection: bool,
    /// Start a new journal segment after this many bytes (`--journal-segment-bytes`).
    pub journal_segment_bytes: Option<u64>,
}

/// The daemon's settings once policy and flags are combined.
#[derive(Debug, Clone)]
pub struct Config {
    pub dns_listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub resolver: Settings,
    pub rate_limit: u32,
    pub state_dir: PathBuf,
    /// Where the block page is served (HTTP); port 443 of the same addresses is reset.
    pub block_page: Vec<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub lease_files: Vec<LeaseFile>,
    /// Read the kernel's neighbour table for clients' MACs.
    pub neighbours: bool,
    /// The firewall table to own, if any.
    pub firewall: Option<FirewallConfig>,
    /// The interfaces whose traffic inspection reads.
    pub inspect: Vec<String>,
    /// How large the event journal may grow.
    pub journal: journal::Limits,
    /// Where events are sent, if anywhere.
    pub console: Option<schoolgate_engine::policy::gateway::Console>,
    /// The school's roster export, if the policy names one.
    pub roster: Option<PathBuf>,
    /// The school's LDAP or Active Directory, if the policy names one.
    pub ldap: Option<schoolgate_engine::policy::gateway::Ldap>,
    /// The RADIUS accounting listener, if the policy has one.
    pub radius: Option<schoolgate_engine::policy::gateway::Radius>,
    /// Minutes a sign-in lasts without word from its reporter.
    pub session_idle_minutes: u32,
    /// The HTTPS sign-in endpoint, if the policy has one.
    pub sign_in: Option<schoolgate_engine::policy::gateway::SignInEndpoint>,
    /// DNS over HTTPS and TLS for school devices away from school.
    pub off_site: Option<schoolgate_engine::policy::gateway::OffSite>,
}

/// What the firewall needs from the configuration.
#[derive(Debug, Clone)]
pub struct FirewallConfig {
    pub settings: schoolgate_gateway::firewall::ruleset::Settings,
    pub on_stop: OnStop,
    pub nft: Nft,
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
    #[error("cannot use the state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("cannot send events to the console: {0}")]
    Shipper(#[from] crate::report::shipper::ShipperError),
    #[error("cannot watch files: {0}")]
    Watch(#[from] notify::Error),
    #[error(
        "the firewall is on but `gateway.lan_interfaces` is empty: name the school-facing interfaces, or run with --no-firewall"
    )]
    FirewallWithoutLan,
    #[error("cannot load the firewall table: {0}")]
    Firewall(#[from] NftError),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Radius(#[from] people::radius::RadiusStartError),
    #[error(transparent)]
    SignIn(#[from] people::sign_in::TokensError),
    #[error("gateway.off_site: {0}")]
    OffSite(#[from] schoolgate_serve::TlsError),
}

/// What the daemon is told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Read the policy again (SIGHUP).
    Reload,
    /// Stop cleanly (SIGTERM, SIGINT).
    Stop,
}

/// The addresses the services were bound to (ports chosen by the system where 0 was asked).
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub dns: Vec<SocketAddr>,
    pub block_page: Vec<SocketAddr>,
    pub metrics: Option<SocketAddr>,
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
        let firewall = match gateway {
            Some(g) if g.firewall.enabled && !overrides.no_firewall => {
                if g.lan_interfaces.is_empty() {
                    return Err(DaemonError::FirewallWithoutLan);
                }
                Some(FirewallConfig {
                    settings: schoolgate_gateway::firewall::ruleset::Settings::new(
                        g.lan_interfaces.clone(),
                        &dns_listen,
                    ),
                    on_stop: g.firewall.on_stop,
                    nft: Nft::default(),
                })
            }
            _ => None,
        };
        let inspect = match gateway {
            Some(g) if g.inspection && !overrides.no_inspection => g.lan_interfaces.clone(),
            _ => Vec::new(),
        };
        Ok(Self {
            firewall,
            inspect,
            dns_listen,
            upstreams,
            resolver,
            rate_limit: gateway.map_or(DEFAULT_RATE_LIMIT, |g| g.dns.rate_limit),
            state_dir,
            block_page: block_page
                .map(|b| std::iter::once(b.listen).chain(b.listen_v6).collect())
                .unwrap_or_default(),
            metrics: overrides
                .metrics_listen
                .or_else(|| gateway.and_then(|g| g.metrics)),
            lease_files: gateway.map(|g| g.dhcp_leases.clone()).unwrap_or_default(),
            neighbours: true,
            journal: overrides.journal_segment_bytes.map_or_else(
                journal::Limits::default,
                |segment_bytes| journal::Limits {
                    segment_bytes,
                    ..journal::Limits::default()
                },
            ),
            console: gateway.and_then(|g| g.console.clone()),
            roster: gateway.and_then(|g| g.roster.clone()),
            ldap: gateway.and_then(|g| g.ldap.clone()),
            radius: gateway.and_then(|g| g.radius.clone()),
            sign_in: gateway.and_then(|g| g.sign_in.clone()),
            off_site: gateway.and_then(|g| g.off_site.clone()),
            session_idle_minutes: gateway.map_or(
                schoolgate_engine::policy::gateway::DEFAULT_SESSION_IDLE_MINUTES,
                |g| g.session_idle_minutes,
            ),
        })
    }
}

/// What a reload leads to, whether the file watch or SIGHUP asked for it.
#[derive(Clone)]
struct Reloads {
    events: Arc<Events>,
    metrics: Arc<Metrics>,
    firewall: Option<Arc<Firewall>>,
    learner: Option<Learner>,
    /// Wakes the LDAP reader, when there is one: SIGHUP reads the directory at once too.
    read_directory: Option<Arc<tokio::sync::Notify>>,
    /// Who is signed in where: identified again under a new policy.
    sessions: Arc<LiveSessions>,
    /// Wakes the feed keeper: a new policy may name new feeds.
    feeds: Arc<crate::feeds::Wake>,
}

impl Reloads {
    /// Counts and reports one reload, and loads a new policy's firewall table (on failure
    /// the old table stays).
    fn after(&self, outcome: &reload::Outcome) {
        self.record(outcome);
        if let reload::Outcome::Applied(policy) = outcome {
            self.sessions.rebuild(policy);
            self.feeds.policy_changed();
        }
        if let (reload::Outcome::Applied(policy), Some(fw)) = (outcome, &self.firewall) {
            if let Err(e) = fw.apply(policy, crate::clock::now()) {
                warn!(error = %e, "cannot load the firewall table for the new policy; the previous one stays");
            }
            // The schedule the firewall follows may have changed.
            if let Some(l) = &self.learner {
                l.reloaded();
            }
        }
    }

    fn record(&self, outcome: &reload::Outcome) {
        let now = crate::clock::now();
        match outcome {
            reload::Outcome::Applied(_) => {
                self.metrics.reload("applied");
                self.events
                    .emit(Event::new(Kind::PolicyReloaded, now, Severity::Info));
            }
            reload::Outcome::Unchanged => self.metrics.reload("unchanged"),
            reload::Outcome::Restored => {
                self.metrics.reload("restored");
                let mut event = Event::new(Kind::PolicyReloaded, now, Severity::Info);
                event.evidence = Some(
                    "the policy file was restored to the policy in force after a rejected edit"
                        .to_owned(),
                );
                self.events.emit(event);
            }
            reload::Outcome::Rejected(e) => {
                self.metrics.reload("rejected");
                let mut event = Event::new(Kind::PolicyRejected, now, Severity::Medium);
                event.evidence = Some(bounded(&e.to_string().replace('\n', "; ")));
                self.events.emit(event);
            }
        }
    }
}

async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// What stops one started service: run once, in the reverse of the start order.
type Stop = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The services started so far, each with what stops it.
#[derive(Default)]
struct Running(Vec<(&'static str, Stop)>);

impl Running {
    /// Records that `name` runs, and how it stops.
    fn started<F>(&mut self, name: &'static str, stop: impl FnOnce() -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.push((name, Box::new(move || Box::pin(stop()))));
    }

    /// Stops every service, the last started first.
    async fn stop(self) {
        for (name, stop) in self.0.into_iter().rev() {
            debug!(service = name, "stopping");
            stop().await;
        }
    }
}

/// Waits for a thread to end without holding up the runtime.
async fn join<T: Send + 'static>(thread: std::thread::JoinHandle<T>) {
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

/// Stops a task (it ends at its next await point).
async fn abort(task: tokio::task::JoinHandle<()>) {
    task.abort();
    let _ = task.await;
}

/// Runs the services until told to stop. `on_ready` hears the bound addresses.
///
/// Each service is started by its own function below, in the order listed here, and
/// stopped in the reverse order: a later service may use an earlier one until it stops.
/// If one cannot start, those already started are stopped before the error is returned.
pub async fn run(
    live: Arc<LivePolicy>,
    config: Config,
    on_ready: impl FnOnce(&Ready),
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Result<(), DaemonError> {
    let mut running = Running::default();
    let started = start(&live, &config, &mut running).await;
    let (reloads, ready) = match started {
        Ok(s) => s,
        Err(e) => {
            running.stop().await;
            return Err(e);
        }
    };
    on_ready(&ready);
    while let Some(c) = control.recv().await {
        match c {
            Control::Reload => {
                info!("reloading the policy");
                reloads.after(&live.reload());
                if let Some(read) = &reloads.read_directory {
                    read.notify_one();
                }
                reloads.feeds.refresh_all();
            }
            Control::Stop => break,
        }
    }
    info!("stopping");
    running.stop().await;
    Ok(())
}

/// Starts every service, in order; what a reload leads to, and the bound addresses.
async fn start(
    live: &Arc<LivePolicy>,
    config: &Config,
    running: &mut Running,
) -> Result<(Reloads, Ready), DaemonError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    // The console's granted exceptions, as kept at the last poll: in force from the start,
    // whether the console can be reached or not.
    let added = config.state_dir.join(crate::policy_file::ADDED_FILE);
    if let crate::reload::Outcome::Rejected(e) = live.add_from(added) {
        warn!(error = %e, "the granted exceptions could not be read; the policy stays as it is");
    }
    // The console's questions are answered from the directory, read after reporting starts.
    let asked = Arc::new(std::sync::OnceLock::new());
    let (events, metrics) = start_reporting(live, config, &asked, running)?;
    let directory = start_clients(config, running)?;
    let (sessions, read_directory) =
        start_people(live, config, &events, &metrics, &directory, running).await?;
    let _ = asked.set(Arc::clone(&sessions));
    let quarantine = Arc::new(Quarantine::default());
    let firewall = start_firewall(live, config, &quarantine, running)?;
    let actor = Arc::new(
        Actor::new(
            Arc::clone(&events),
            Arc::clone(&directory),
            Arc::clone(&quarantine),
            firewall.clone(),
            config.state_dir.clone(),
        )
        .with_sessions(Arc::clone(&sessions)),
    );
    let shared = Arc::new(Shared {
        live: Arc::clone(live),
        directory,
        metrics: Arc::clone(&metrics),
        quarantine,
        sessions: Arc::clone(&sessions),
    });
    let (learner, learned) = match config.firewall {
        Some(_) => {
            let (l, rx) = learner::channel();
            (Some(l), Some(rx))
        }
        None => (None, None),
    };
    let feeds = start_feeds(live, config, &events, running)?;
    let reloads = Reloads {
        events: Arc::clone(&events),
        metrics: Arc::clone(&metrics),
        firewall: firewall.clone(),
        learner: learner.clone(),
        read_directory,
        sessions,
        feeds,
    };
    start_nflog(config, &shared, &actor, running);
    start_follower(&shared, &actor, firewall.as_ref(), running)?;
    start_releases(config, &shared, &actor, running)?;
    start_inspection(config, &shared, &actor, running)?;
    start_policy_watch(live, &reloads, running)?;
    let upstream = Upstream::new(&config.upstreams)?;
    if let (Some(fw), Some(l), Some(rx)) = (&firewall, &learner, learned) {
        let learning = learner::spawn(
            Arc::clone(fw),
            Arc::clone(live),
            l,
            rx,
            upstream.clone(),
            tokio::runtime::Handle::current(),
        )
        .map_err(DaemonError::Thread)?;
        running.started("firewall learner", move || async move {
            let _ = tokio::task::spawn_blocking(move || learning.stop()).await;
        });
    }
    let mut ready = Ready::default();
    let resolver = start_dns(
        config, &shared, &actor, learner, upstream, &mut ready, running,
    )
    .await?;
    if let Some(o) = &config.off_site {
        start_off_site(o, config.sign_in.as_ref(), resolver, running).await?;
    }
    start_block_page(config, &shared, &mut ready, running).await?;
    start_metrics(config, &metrics, firewall.as_ref(), &mut ready, running).await?;
    let ticking = Arc::clone(&events);
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            ticking.tick(crate::clock::now());
        }
    });
    running.started("event ticker", move || abort(ticker));
    Ok((reloads, ready))
}

/// The list feeds, kept current by a task of their own; returns what wakes it. Their copies'
/// directory is made first, so the policy watch can watch it before any copy arrives.
fn start_feeds(
    live: &Arc<LivePolicy>,
    config: &Config,
    events: &Arc<Events>,
    running: &mut Running,
) -> Result<Arc<crate::feeds::Wake>, DaemonError> {
    let policy = live.current();
    // Made whether or not the policy names a feed yet: a later edit may add one.
    let always = config.state_dir.join("feeds");
    let named = policy.feeds().iter().filter_map(|f| f.cache.parent());
    for dir in std::iter::once(always.as_path()).chain(named) {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::StateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let wake = Arc::new(crate::feeds::Wake::default());
    let task = tokio::spawn(crate::feeds::keep(
        Arc::clone(live),
        Arc::clone(events),
        Arc::clone(&wake),
    ));
    running.started("feed keeper", move || abort(task));
    Ok(wake)
}

/// Reporting: the journal, its writer, `agent_started` and the damage found at start, and
/// the shippers to the console. Stopped last: the pending events are flushed,
/// `agent_stopped` is written, and what is left goes to the console if it answers soon.
fn start_reporting(
    live: &Arc<LivePolicy>,
    config: &Config,
    asked: &Arc<std::sync::OnceLock<Arc<LiveSessions>>>,
    running: &mut Running,
) -> Result<(Arc<Events>, Arc<Metrics>), DaemonError> {
    // The console's settings are checked before anything is journaled, so an agent that
    // cannot reach its console does not start at all.
    let console = match &config.console {
        Some(c) => {
            let settings = crate::report::shipper::Settings {
                url: c.url.clone(),
                name: c.name.clone().unwrap_or_else(host_name),
                token: crate::report::shipper::read_token(&c.token_file)?,
                ca_file: c
                    .ca_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(crate::report::shipper::SYSTEM_CA)),
            };
            let client = crate::report::shipper::client(&settings.ca_file)?;
            Some((settings, client))
        }
        None => None,
    };
    let (journal, found) = Journal::open(&config.state_dir, config.journal, crate::clock::now())?;
    let metrics = Arc::new(Metrics::new());
    let (events, rx) = Events::new(Aggregator::default(), metrics.events_dropped.clone());
    events.carry_losses(journal.carried_losses());
    let events = Arc::new(events);
    let (stop_writer, writer_stop) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(write_all(rx, journal.clone(), events.writer(), writer_stop));
    events.emit(Event::new(
        Kind::AgentStarted,
        crate::clock::now(),
        Severity::Info,
    ));
    // Events the journal found lost to damage at start, for the console's health view.
    let lost_to_damage: u64 = found
        .iter()
        .filter(|n| n.kind == Kind::JournalDamaged)
        .map(|n| u64::from(n.count))
        .sum();
    for note in found {
        warn!(
            evidence = note.evidence.as_deref().unwrap_or_default(),
            "journal damage skipped"
        );
        events.emit(note);
    }
    let (stop_shipper, shipper_stop) = tokio::sync::watch::channel(false);
    let mut shippers = Vec::new();
    if let Some((settings, client)) = console {
        let status = crate::report::shipper::status_of(
            Arc::clone(live),
            Arc::clone(&metrics),
            lost_to_damage,
        );
        info!(console = %settings.url, agent = %settings.name, "sending events to the console");
        shippers.push(tokio::spawn(crate::report::shipper::ship(
            journal.clone(),
            settings.clone(),
            client.clone(),
            status,
            shipper_stop.clone(),
        )));
        shippers.push(tokio::spawn(crate::act::commands::take_commands(
            settings,
            client,
            config.state_dir.clone(),
            Arc::clone(live),
            Arc::clone(asked),
            shipper_stop,
        )));
    }
    let stopping = Arc::clone(&events);
    running.started("reporting", move || async move {
        stopping.flush();
        stopping.emit(Event::new(
            Kind::AgentStopped,
            crate::clock::now(),
            Severity::Info,
        ));
        let _ = stop_writer.send(());
        let _ = writer.await;
        // What is left goes to the console if it answers soon; else it waits in the
        // journal for the next start.
        if !shippers.is_empty() {
            let deadline = crate::clock::instant() + SHIP_AT_STOP;
            while journal.backlog() > 0 && crate::clock::instant() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = stop_shipper.send(true);
            for s in shippers {
                let _ = s.await;
            }
        }
    });
    Ok((events, metrics))
}

/// The directory of pupils and staff: the roster read now and on every change, and LDAP now
/// and every `sync_minutes`; each read reported (`directory_loaded` with how many and from
/// where, `directory_rejected` with why). Then who is signed in where: the sessions kept in
/// the state directory, the RADIUS listener, and a ticker that ends idle sessions and those
/// whose address another device now has (`clients`: the neighbour table and leases), and
/// keeps them. Returns the sessions and, with LDAP, what wakes its reader.
async fn start_people(
    live: &Arc<LivePolicy>,
    config: &Config,
    events: &Arc<Events>,
    metrics: &Arc<Metrics>,
    clients: &Arc<Directory>,
    running: &mut Running,
) -> Result<(Arc<LiveSessions>, Option<Arc<tokio::sync::Notify>>), DaemonError> {
    let people = LivePeople::new(config.roster.clone());
    let sessions = LiveSessions::new(Some(&config.state_dir), Arc::clone(&people));
    let report = {
        let events = Arc::clone(events);
        let (sessions, live) = (Arc::clone(&sessions), Arc::clone(live));
        move |outcome: &people::RosterRead| {
            let event = match outcome {
                people::RosterRead::Loaded(n) => {
                    sessions.rebuild(&live.current());
                    directory_loaded(*n, "roster".to_owned())
                }
                people::RosterRead::Rejected(error) => directory_rejected(&error.to_string()),
                _ => return,
            };
            events.emit(event);
        }
    };
    if let Some(outcome) = people.reload() {
        report(&outcome);
    }
    sessions.rebuild(&live.current());
    if let Some(watch) = people.watch(DEBOUNCE, report) {
        let watch = watch?;
        running.started("roster watch", move || async move { drop(watch) });
    }
    let mut read_now = None;
    if let Some(ldap) = config.ldap.clone() {
        let wake = Arc::new(tokio::sync::Notify::new());
        let sync = tokio::spawn(keep_ldap(
            ldap,
            Arc::clone(&sessions),
            Arc::clone(live),
            Arc::clone(&people),
            Arc::clone(events),
            Arc::clone(&wake),
        ));
        running.started("LDAP reader", move || abort(sync));
        read_now = Some(wake);
    }
    if let Some(radius) = &config.radius {
        let listener = people::radius::Listener::new(
            radius,
            Arc::clone(&sessions),
            Arc::clone(live),
            Arc::clone(metrics),
        )?;
        for addr in &radius.listen {
            let socket = people::radius::Listener::bind(*addr).await?;
            info!(addr = %addr, "RADIUS accounting listening");
            let task = tokio::spawn(Arc::clone(&listener).serve(socket));
            running.started("RADIUS listener", move || abort(task));
        }
    }
    if let Some(s) = &config.sign_in {
        start_sign_in(s, &sessions, live, metrics, running).await?;
    }
    let idle = jiff::SignedDuration::from_mins(i64::from(config.session_idle_minutes));
    let (keeping, live, metrics) = (Arc::clone(&sessions), Arc::clone(live), Arc::clone(metrics));
    let clients = Arc::clone(clients);
    let keeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut seconds = 0u64;
        loop {
            tick.tick().await;
            seconds += 1;
            if seconds.is_multiple_of(60) {
                let ended = keeping.expire(&live.current(), crate::clock::now(), idle);
                metrics.sessions_ended(&ended);
            }
            if seconds.is_multiple_of(10) {
                let now = crate::clock::now();
                let ended = keeping.moved(&live.current(), |ip| clients.mac(ip, now).map(|m| m.0));
                metrics.sessions_ended(&ended);
            }
            metrics
                .sessions
                .set(i64::try_from(keeping.len()).unwrap_or(i64::MAX));
            keeping.save();
        }
    });
    let saving = Arc::clone(&sessions);
    running.started("session keeper", move || async move {
        keeper.abort();
        let _ = keeper.await;
        saving.save();
    });
    Ok((sessions, read_now))
}

/// The sign-in endpoint for logon scripts, over HTTPS on each `listen` address.
async fn start_sign_in(
    config: &schoolgate_engine::policy::gateway::SignInEndpoint,
    sessions: &Arc<LiveSessions>,
    live: &Arc<LivePolicy>,
    metrics: &Arc<Metrics>,
    running: &mut Running,
) -> Result<(), DaemonError> {
    use people::sign_in::{Endpoint, TokensError, router};
    let endpoint = Endpoint::new(
        config,
        Arc::clone(sessions),
        Arc::clone(live),
        Arc::clone(metrics),
    )?;
    let tls = schoolgate_serve::tls_config(&config.cert_file, &config.key_file)
        .map_err(TokensError::Tls)?;
    let limits = schoolgate_serve::Limits {
        connections: 256,
        per_address: 8,
        ..schoolgate_serve::Limits::default()
    };
    for addr in &config.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TokensError::Bind {
                addr: *addr,
                source,
            })?;
        info!(addr = %addr, "sign-in endpoint listening");
        let task = tokio::spawn(schoolgate_serve::serve(
            listener,
            router(Arc::clone(&endpoint)),
            Some(Arc::clone(&tls)),
            limits,
            Arc::from([]),
            std::future::pending(),
        ));
        running.started("sign-in endpoint", move || abort(task));
    }
    Ok(())
}

/// Reads the directory server now, every `sync_minutes` and whenever `wake` says, using each
/// good read.
async fn keep_ldap(
    config: schoolgate_engine::policy::gateway::Ldap,
    sessions: Arc<LiveSessions>,
    live: Arc<LivePolicy>,
    people: Arc<LivePeople>,
    events: Arc<Events>,
    wake: Arc<tokio::sync::Notify>,
) {
    let every = Duration::from_secs(u64::from(config.sync_minutes) * 60);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        let event = match people::ldap::read(&config).await {
            Ok(read) => {
                let n = read.directory.len();
                let skipped = read.skipped.total();
                info!(url = %config.url, people = n, skipped, "directory read");
                people.use_ldap(read.directory);
                sessions.rebuild(&live.current());
                let from = if skipped == 0 {
                    format!("ldap {}", config.url)
                } else {
                    format!(
                        "ldap {}; {skipped} entries were not pupils or staff",
                        config.url
                    )
                };
                directory_loaded(n, from)
            }
            Err(error) => {
                warn!(error = %error, "directory read failed; the last good directory stays");
                directory_rejected(&error.to_string())
            }
        };
        events.emit(event);
    }
}

fn directory_loaded(people: usize, from: String) -> Event {
    let mut e = Event::new(Kind::DirectoryLoaded, crate::clock::now(), Severity::Info);
    e.count = schoolgate_contract::text::count(people as u64);
    e.evidence = Some(bounded(&from));
    e
}

fn directory_rejected(why: &str) -> Event {
    let mut e = Event::new(
        Kind::DirectoryRejected,
        crate::clock::now(),
        Severity::Medium,
    );
    e.evidence = Some(bounded(&why.replace('\n', "; ")));
    e
}

/// Who is asking: the neighbour table followed and read again every minute, and the DHCP
/// lease files watched.
fn start_clients(config: &Config, running: &mut Running) -> Result<Arc<Directory>, DaemonError> {
    let directory = Directory::new(config.neighbours, config.lease_files.clone());
    directory.follow_changes();
    let refresh = tokio::spawn(Arc::clone(&directory).keep_fresh(NEIGHBOUR_REFRESH));
    running.started("neighbour refresh", move || abort(refresh));
    if !config.lease_files.is_empty() {
        let (d1, d2) = (Arc::clone(&directory), Arc::clone(&directory));
        let watch = watch_files(
            "lease-watch",
            DEBOUNCE,
            move || d1.lease_paths(),
            move || d2.read_leases(),
        )?;
        running.started("lease watch", move || async move { drop(watch) });
    }
    Ok(directory)
}

/// The firewall's table, loaded at start, with the quarantines the state file and an earlier
/// run's table hold put back. On stop the table stays or goes as `on_stop` says.
fn start_firewall(
    live: &Arc<LivePolicy>,
    config: &Config,
    quarantine: &Quarantine,
    running: &mut Running,
) -> Result<Option<Arc<Firewall>>, DaemonError> {
    let firewall = match &config.firewall {
        Some(f) => {
            let fw = Arc::new(Firewall::start(
                f.nft.clone(),
                f.settings.clone(),
                f.on_stop,
                &live.current(),
                crate::clock::now(),
            )?);
            let stopping = Arc::clone(&fw);
            running.started("firewall", move || async move {
                if let Err(e) = stopping.stop() {
                    warn!(error = %e, "firewall stop");
                }
            });
            Some(fw)
        }
        None => None,
    };
    // Quarantines from the state file hold even if the table was lost (a reboot). They are
    // read first: their records name the device and what it did, where the table holds
    // bare addresses and MACs, which only add devices the file does not know.
    match quarantine.load(&config.state_dir) {
        Ok(0) => {}
        Ok(n) => info!(devices = n, "quarantine list read"),
        Err(e) => {
            warn!(error = %e, "cannot read the quarantine list; starting with the firewall's")
        }
    }
    if let Some(fw) = &firewall {
        quarantine.extend(&fw.quarantined(), crate::clock::now());
        for r in quarantine.records() {
            if let Err(e) = fw.quarantine(r.ip, r.mac) {
                warn!(error = %e, "cannot restore a quarantine in the firewall");
            }
        }
    }
    Ok(firewall)
}

/// How often the follower looks for a sign-in, a sign-out or a new policy.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How often it looks at every device on the LAN, for exceptions naming devices and networks.
const FOLLOW_ALL_EVERY: u32 = 10;

/// Follows who is where, within a second of a sign-in, a sign-out or a new policy (and every
/// 10 s for devices new on the LAN): banned people's devices are held while they are signed
/// in and freed when they leave (the actor's `follow_bans`), and the firewall judges each
/// address as the decision engine would for whoever is there — the signed-in person's
/// groups, classes and exceptions, and the exceptions naming devices and networks (see
/// `schoolgate_gateway::firewall::placed`).
fn start_follower(
    shared: &Arc<Shared>,
    actor: &Arc<Actor>,
    firewall: Option<&Arc<Firewall>>,
    running: &mut Running,
) -> Result<(), DaemonError> {
    let (shared, actor, fw) = (Arc::clone(shared), Arc::clone(actor), firewall.cloned());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("follower".into())
        .spawn(move || {
            let mut seen: Option<(u64, usize)> = None;
            let mut ticks = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let policy = shared.live.current();
                // The policy's address says whether it changed; the sessions' generation
                // whether anyone signed in or out.
                let now_seen = (shared.sessions.generation(), Arc::as_ptr(&policy) as usize);
                if seen != Some(now_seen) || ticks.is_multiple_of(FOLLOW_ALL_EVERY) {
                    follow_once(&shared, &actor, fw.as_deref(), &policy);
                    seen = Some(now_seen);
                }
                ticks = ticks.wrapping_add(1);
                std::thread::sleep(FOLLOW_EVERY);
            }
        })
        .map_err(DaemonError::Thread)?;
    running.started("follower", move || async move {
        stopping.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    });
    Ok(())
}

/// One round of following who is where: bans first, then the firewall's placed addresses.
fn follow_once(shared: &Shared, actor: &Actor, fw: Option<&Firewall>, policy: &Arc<Policy>) {
    let now = crate::clock::now();
    let sessions = shared.sessions.all();
    // Bans and the firewall follow people at school: a device away from school has no
    // address here.
    let signed_in: Vec<(String, std::net::IpAddr)> = sessions
        .iter()
        .filter_map(|s| Some((s.username.to_string(), s.place.address()?)))
        .collect();
    actor.follow_bans(policy, now, &signed_in, |ip| shared.who(policy, ip, now));
    let Some(fw) = fw else { return };
    let mut addresses: Vec<std::net::IpAddr> =
        signed_in.iter().map(|(_, address)| *address).collect();
    addresses.extend(shared.directory.known(now));
    addresses.sort_unstable();
    addresses.dedup();
    let clients = addresses
        .into_iter()
        .filter(|ip| policy.serves(*ip))
        .map(|ip| {
            let who = shared.who(policy, ip, now);
            (who.identity, who.client)
        });
    match fw.place(policy, clients, now) {
        Ok(true) => debug!("the firewall follows who is where"),
        Ok(false) => {}
        Err(e) => warn!(error = %e, "cannot change who the firewall judges apart"),
    }
}

/// The packets the table logs, each judged as a bypass attempt (DNS to outside resolvers).
/// Another program holding the NFLOG group is no reason not to start.
fn start_nflog(config: &Config, shared: &Arc<Shared>, actor: &Arc<Actor>, running: &mut Running) {
    let Some(f) = &config.firewall else {
        return;
    };
    let (sh, actor) = (Arc::clone(shared), Arc::clone(actor));
    match nflog::Listener::start(f.settings.log_group, move |p| {
        if let Some(a) = Attempt::from_logged(&p) {
            attempt_seen(&sh, &actor, a);
        }
    }) {
        Ok(l) => running.started("nflog", move || async move {
            let _ = tokio::task::spawn_blocking(move || l.stop()).await;
        }),
        Err(e) => warn!(
            group = f.settings.log_group,
            error = %e,
            "cannot listen for logged packets: DNS sent to outside resolvers is still redirected, but not reported"
        ),
    }
}

/// An attempt the firewall's log showed, handed to the actor with its sender. Only the
/// school's own devices are judged; anything else on the LAN is not ours to confine.
fn attempt_seen(shared: &Shared, actor: &Actor, attempt: Attempt) {
    let policy = shared.live.current();
    if !policy.serves(attempt.client) {
        return;
    }
    let now = crate::clock::now();
    let who = shared.who(&policy, attempt.client, now);
    actor.act(&policy, &who, now, act::Outcome::Attempt(attempt));
}

/// Release requests (`schoolgate-agent release`, the console's commands): those waiting are
/// applied now, and the file is watched for more.
fn start_releases(
    config: &Config,
    shared: &Arc<Shared>,
    actor: &Arc<Actor>,
    running: &mut Running,
) -> Result<(), DaemonError> {
    let apply = {
        let (shared, actor) = (Arc::clone(shared), Arc::clone(actor));
        move || {
            let policy = shared.live.current();
            let now = crate::clock::now();
            actor.apply_releases(&policy, now, |ip| shared.who(&policy, ip, now));
        }
    };
    apply();
    let requests = config.state_dir.join(crate::act::quarantine::REQUESTS_FILE);
    let watch = watch_files(
        "release-watch",
        DEBOUNCE,
        move || vec![requests.clone()],
        apply,
    )?;
    running.started("release watch", move || async move { drop(watch) });
    Ok(())
}

/// Packet inspection: a thread per LAN interface it can open.
fn start_inspection(
    config: &Config,
    shared: &Arc<Shared>,
    actor: &Arc<Actor>,
    running: &mut Running,
) -> Result<(), DaemonError> {
    let mut captures = Vec::new();
    for name in &config.inspect {
        match crate::capture::live::open(name, false) {
            Ok((live, sender)) => captures.push((name.clone(), live, sender)),
            Err(e) => {
                warn!(interface = %name, error = %e, "cannot inspect this interface's traffic")
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads = crate::inspection::spawn(
        captures,
        Arc::clone(shared),
        Arc::clone(actor),
        Arc::clone(&stop),
    )
    .map_err(DaemonError::Thread)?;
    running.started("inspection", move || async move {
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            join(t).await;
        }
    });
    Ok(())
}

/// The policy file watched: each save reloaded, reported, and a new table loaded.
fn start_policy_watch(
    live: &Arc<LivePolicy>,
    reloads: &Reloads,
    running: &mut Running,
) -> Result<(), DaemonError> {
    let reloads = reloads.clone();
    let watch = live.watch(DEBOUNCE, move |o| reloads.after(o))?;
    running.started("policy watch", move || async move { drop(watch) });
    Ok(())
}

/// The resolver: UDP on one thread per core for each listen address, TCP on tasks.
async fn start_dns(
    config: &Config,
    shared: &Arc<Shared>,
    actor: &Arc<Actor>,
    learner: Option<Learner>,
    upstream: Upstream,
    ready: &mut Ready,
    running: &mut Running,
) -> Result<Arc<Resolver>, DaemonError> {
    let resolver = Arc::new(Resolver::new(
        Arc::clone(shared),
        Arc::clone(actor),
        learner,
        config.resolver,
        upstream,
        config.rate_limit,
    ));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sockets = bind(&config.dns_listen, threads)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: format!("{:?}", config.dns_listen),
            source,
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    let mut tcp_tasks = Vec::new();
    let mut failed = None;
    'listen: for (addr, udp, tcp) in sockets {
        info!(%addr, "dns listening (udp, tcp)");
        ready.dns.push(addr);
        for (i, socket) in udp.into_iter().enumerate() {
            let (resolver, stop) = (Arc::clone(&resolver), Arc::clone(&stop));
            let runtime = tokio::runtime::Handle::current();
            match std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || serve_udp(socket, resolver, runtime, stop))
            {
                Ok(t) => udp_threads.push(t),
                Err(source) => {
                    failed = Some(DaemonError::Bind {
                        addr: addr.to_string(),
                        source,
                    });
                    break 'listen;
                }
            }
        }
        tcp_tasks.push(tokio::spawn(serve_tcp(tcp, Arc::clone(&resolver))));
    }
    running.started("dns", move || async move {
        for t in tcp_tasks {
            abort(t).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in udp_threads {
            join(t).await;
        }
    });
    failed.map_or(Ok(resolver), Err)
}

/// DNS over TLS and over HTTPS for school devices away from school, on the addresses
/// `gateway.off_site` names, with the certificate from its files. With a sign-in endpoint
/// set up, the HTTPS listener also takes the devices' sign-ins, by their ids.
async fn start_off_site(
    settings: &schoolgate_engine::policy::gateway::OffSite,
    sign_in: Option<&schoolgate_engine::policy::gateway::SignInEndpoint>,
    resolver: Arc<Resolver>,
    running: &mut Running,
) -> Result<(), DaemonError> {
    use crate::dns::off_site::{self, OffSite};
    let key = schoolgate_serve::certified_key(&settings.cert_file, &settings.key_file)?;
    let off_site = OffSite::new(Arc::clone(&resolver), settings);
    let mut routes = off_site::doh_router(Arc::clone(&off_site));
    if let Some(config) = sign_in {
        let shared = &resolver.shared;
        let endpoint = people::sign_in::Endpoint::new(
            config,
            Arc::clone(&shared.sessions),
            Arc::clone(&shared.live),
            Arc::clone(&shared.metrics),
        )?;
        routes = routes.merge(people::sign_in::device_router(endpoint));
    }
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: addr.to_string(),
                source,
            })
    };
    let dot_tls = off_site::dot_tls(&off_site, Arc::clone(&key))?;
    for addr in &settings.dot {
        let listener = bind(*addr).await?;
        info!(%addr, "dns over tls listening (devices away from school)");
        let task = tokio::spawn(off_site::serve_dot(
            listener,
            Arc::clone(&off_site),
            Arc::clone(&dot_tls),
        ));
        running.started("dns over tls", move || abort(task));
    }
    let doh_tls = off_site::doh_tls(key)?;
    let limits = schoolgate_serve::Limits {
        http2: true,
        per_address: 256,
        connections: 4096,
        ..schoolgate_serve::Limits::default()
    };
    for addr in &settings.doh {
        let listener = bind(*addr).await?;
        info!(%addr, "dns over https listening (devices away from school)");
        let task = tokio::spawn(schoolgate_serve::serve(
            listener,
            routes.clone(),
            Some(Arc::clone(&doh_tls)),
            limits,
            Arc::from([]),
            std::future::pending(),
        ));
        running.started("dns over https", move || abort(task));
    }
    Ok(())
}

/// The block page on each of its addresses, and the listener on port 443 beside it that
/// resets HTTPS to blocked names at once.
async fn start_block_page(
    config: &Config,
    shared: &Arc<Shared>,
    ready: &mut Ready,
    running: &mut Running,
) -> Result<(), DaemonError> {
    for addr in &config.block_page {
        let listener = bind_tcp(*addr).await?;
        let bound = listener.local_addr().unwrap_or(*addr);
        info!(addr = %bound, "block page listening");
        ready.block_page.push(bound);
        let page = tokio::spawn(blockpage::serve(listener, Arc::clone(shared)));
        running.started("block page", move || abort(page));
        // Nothing else should hold 443 on the sinkhole address; if something does, HTTPS to
        // blocked names reaches it instead, so say so.
        let tls = SocketAddr::new(addr.ip(), blockpage::HTTPS_PORT);
        match TcpListener::bind(tls).await {
            Ok(l) => {
                let resets = tokio::spawn(blockpage::reset_tls(l, Arc::clone(shared)));
                running.started("block page resets", move || abort(resets));
            }
            Err(e) => {
                warn!(addr = %tls, error = %e, "cannot listen for HTTPS to blocked names; the kernel's own reset applies only if the port is closed")
            }
        }
    }
    Ok(())
}

/// `/metrics`, where `metrics.listen` asks for it.
async fn start_metrics(
    config: &Config,
    metrics: &Arc<Metrics>,
    firewall: Option<&Arc<Firewall>>,
    ready: &mut Ready,
    running: &mut Running,
) -> Result<(), DaemonError> {
    let Some(addr) = config.metrics else {
        return Ok(());
    };
    let listener = bind_tcp(addr).await?;
    ready.metrics = listener.local_addr().ok();
    info!(addr = ?ready.metrics, "metrics listening");
    let server = tokio::spawn(serve_metrics(
        listener,
        Arc::clone(metrics),
        firewall.cloned(),
    ));
    running.started("metrics", move || abort(server));
    Ok(())
}

/// How long a stopping agent waits for the console to take what is left.
const SHIP_AT_STOP: Duration = Duration::from_secs(2);

/// This machine's host name, the agent's name at the console unless `console.name` says.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into())
}

async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    firewall: Option<Arc<Firewall>>,
) {
    use axum::http::header;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = Arc::clone(&metrics);
            let fw = firewall.clone();
            async move {
                let mut text = m.render();
                // The firewall's families go before the closing `# EOF`.
                if let Some(fw) = fw
                    && let Ok(extra) = tokio::task::spawn_blocking(move || fw.metrics_text()).await
                {
                    let end = text.rfind("# EOF").unwrap_or(text.len());
                    text.insert_str(end, &extra);
                }
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        warn!(error = %e, "metrics server");
    }
}
