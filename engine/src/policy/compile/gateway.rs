//! The `gateway:` section: listen addresses, upstreams, the block page, the console, the
//! firewall and inspection settings.

use super::*;

impl Compiler<'_> {
    pub(super) fn socket_addr(&mut self, s: &S<String>) -> Option<SocketAddr> {
        let parsed = s.value.trim().parse::<SocketAddr>().ok();
        if parsed.is_none() {
            self.error(
                s,
                ErrorKind::SocketAddr {
                    value: s.value.clone(),
                },
            );
        }
        parsed
    }

    pub(super) fn gateway(&mut self, raw: &S<RawGateway>) -> Option<Gateway> {
        let g = &raw.value;
        let errors_before = self.errors.len();
        let mut lan_interfaces = Vec::new();
        for i in &g.lan_interfaces {
            if is_interface_name(i.value.trim()) {
                lan_interfaces.push(i.value.trim().to_owned());
            } else {
                self.error(
                    i,
                    ErrorKind::Interface {
                        value: i.value.clone(),
                    },
                );
            }
        }
        let mut dns = Dns {
            listen: Vec::new(),
            upstreams: Vec::new(),
            block_response: BlockResponse::Sinkhole,
            rate_limit: DEFAULT_RATE_LIMIT,
            defences: Defences::default(),
        };
        let mut block_response_at = None;
        if let Some(d) = &g.dns {
            dns.listen = d
                .listen
                .iter()
                .filter_map(|a| self.socket_addr(a))
                .collect();
            for u in &d.upstreams {
                match parse_upstream(&u.value) {
                    Some(addr) => dns.upstreams.push(addr),
                    None => self.error(
                        u,
                        ErrorKind::Upstream {
                            value: u.value.clone(),
                        },
                    ),
                }
            }
            if let Some(b) = &d.block_response {
                match b.value.trim() {
                    "sinkhole" => dns.block_response = BlockResponse::Sinkhole,
                    "nxdomain" => dns.block_response = BlockResponse::Nxdomain,
                    _ => self.error(
                        b,
                        ErrorKind::BlockResponse {
                            value: b.value.clone(),
                        },
                    ),
                }
                block_response_at = Some(self.at(b));
            }
            if let Some(r) = &d.rate_limit {
                if r.value == 0 {
                    self.error(r, ErrorKind::RateLimit { value: r.value });
                }
                dns.rate_limit = r.value;
            }
            if let Some(x) = &d.defences {
                dns.defences = Defences {
                    firefox_canary: !x.danger_allow_firefox_doh,
                    private_relay: !x.danger_allow_private_relay,
                    ddr: !x.danger_allow_ddr,
                    strip_ech: !x.danger_keep_ech,
                };
            }
        }
        let block_page = g.block_page.as_ref().and_then(|b| {
            let listen = self.socket_addr(&b.listen)?;
            let listen_v6 = match &b.listen_v6 {
                Some(v6) => match self.socket_addr(v6) {
                    Some(a) if a.is_ipv6() => Some(a),
                    Some(_) => {
                        self.error(
                            v6,
                            ErrorKind::NotIpv6 {
                                value: v6.value.clone(),
                            },
                        );
                        None
                    }
                    None => None,
                },
                None => None,
            };
            Some(BlockPage { listen, listen_v6 })
        });
        if dns.block_response == BlockResponse::Sinkhole && g.block_page.is_none() {
            let at = block_response_at.unwrap_or_else(|| self.at(raw));
            self.errors.push(PolicyError {
                at,
                kind: ErrorKind::SinkholeWithoutBlockPage,
            });
        }
        let metrics = g.metrics.as_ref().and_then(|m| self.socket_addr(&m.listen));
        let console = g.console.as_ref().and_then(|c| {
            let url = c.url.value.trim();
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() > "https://".len();
            if !ok {
                self.error(
                    &c.url,
                    ErrorKind::Url {
                        value: c.url.value.clone(),
                    },
                );
                return None;
            }
            Some(Console {
                url: url.to_owned(),
                token_file: PathBuf::from(c.token_file.value.trim()),
                ca_file: c.ca_file.as_ref().map(|f| PathBuf::from(f.value.trim())),
                name: c.name.as_ref().map(|n| n.value.trim().to_owned()),
            })
        });
        let state_dir = g.state_dir.as_ref().map_or_else(
            || PathBuf::from(DEFAULT_STATE_DIR),
            |d| PathBuf::from(d.value.trim()),
        );
        let mut dhcp_leases = Vec::new();
        for l in &g.dhcp_leases {
            let format = match l.value.format.value.trim() {
                "dnsmasq" => LeaseFormat::Dnsmasq,
                "kea" => LeaseFormat::Kea,
                _ => {
                    self.error(
                        &l.value.format,
                        ErrorKind::Choice {
                            what: "lease file format",
                            value: l.value.format.value.clone(),
                            expected: "dnsmasq or kea",
                        },
                    );
                    continue;
                }
            };
            dhcp_leases.push(LeaseFile {
                path: self.base.join(l.value.path.value.trim()),
                format,
            });
        }
        let roster = g.roster.as_ref().map(|r| self.base.join(r.value.trim()));
        let ldap = g.ldap.as_ref().and_then(|l| self.ldap(l));
        let radius = g.radius.as_ref().and_then(|r| self.radius(r));
        let sign_in = g.sign_in.as_ref().and_then(|raw| {
            let s = &raw.value;
            if s.listen.is_empty() {
                self.error(
                    raw,
                    ErrorKind::Empty {
                        what: "gateway.sign_in",
                        name: "listen".to_owned(),
                        needs: "address",
                    },
                );
            }
            let listen: Vec<SocketAddr> = s
                .listen
                .iter()
                .filter_map(|a| self.socket_addr(a))
                .collect();
            (listen.len() == s.listen.len() && !listen.is_empty()).then(|| SignInEndpoint {
                listen,
                cert_file: self.base.join(s.cert_file.value.trim()),
                key_file: self.base.join(s.key_file.value.trim()),
                tokens_file: self.base.join(s.tokens_file.value.trim()),
            })
        });
        let off_site = g.off_site.as_ref().and_then(|raw| self.off_site(raw));
        let session_idle_minutes = match g.sessions.as_ref().and_then(|s| s.idle_minutes.as_ref()) {
            Some(m) if !(5..=10_080).contains(&m.value) => {
                self.error(m, ErrorKind::IdleMinutes { value: m.value });
                DEFAULT_SESSION_IDLE_MINUTES
            }
            Some(m) => m.value,
            None => DEFAULT_SESSION_IDLE_MINUTES,
        };
        let mut firewall = Firewall::default();
        if let Some(f) = &g.firewall {
            if let Some(enabled) = f.value.enabled {
                firewall.enabled = enabled;
            }
            if let Some(o) = &f.value.on_stop {
                match o.value.trim() {
                    "fail_closed" => firewall.on_stop = OnStop::FailClosed,
                    "fail_open" => firewall.on_stop = OnStop::FailOpen,
                    _ => self.error(
                        o,
                        ErrorKind::Choice {
                            what: "firewall on_stop",
                            value: o.value.clone(),
                            expected: "fail_closed or fail_open",
                        },
                    ),
                }
            }
            if firewall.enabled && lan_interfaces.is_empty() {
                self.errors.push(PolicyError {
                    at: self.at(f),
                    kind: ErrorKind::FirewallWithoutLan,
                });
            }
        }
        let inspection = g
            .inspection
            .as_ref()
            .and_then(|i| i.enabled)
            .unwrap_or(true);
        (self.errors.len() == errors_before).then_some(Gateway {
            inspection,
            lan_interfaces,
            dns,
            block_page,
            metrics,
            state_dir,
            console,
            dhcp_leases,
            roster,
            ldap,
            radius,
            session_idle_minutes,
            sign_in,
            off_site,
            firewall,
        })
    }

    fn off_site(&mut self, raw: &S<RawOffSite>) -> Option<OffSite> {
        let o = &raw.value;
        let errors_before = self.errors.len();
        if o.doh.is_empty() && o.dot.is_empty() {
            self.error(
                raw,
                ErrorKind::Empty {
                    what: "gateway.off_site",
                    name: "doh or dot".to_owned(),
                    needs: "address",
                },
            );
        }
        let server_name = match parse_listed(o.server_name.value.trim()) {
            Ok(name) => name.into_string(),
            Err(source) => {
                self.error(&o.server_name, ErrorKind::Domain { source });
                String::new()
            }
        };
        let doh: Vec<SocketAddr> = o.doh.iter().filter_map(|a| self.socket_addr(a)).collect();
        let dot: Vec<SocketAddr> = o.dot.iter().filter_map(|a| self.socket_addr(a)).collect();
        let mut rate_limit = DEFAULT_OFF_SITE_RATE_LIMIT;
        if let Some(r) = &o.rate_limit {
            if r.value == 0 {
                self.error(r, ErrorKind::RateLimit { value: r.value });
            }
            rate_limit = r.value;
        }
        (self.errors.len() == errors_before).then(|| OffSite {
            server_name,
            doh,
            dot,
            cert_file: self.base.join(o.cert_file.value.trim()),
            key_file: self.base.join(o.key_file.value.trim()),
            rate_limit,
        })
    }

    fn radius(&mut self, raw: &S<RawRadius>) -> Option<Radius> {
        let r = &raw.value;
        let errors_before = self.errors.len();
        if r.listen.is_empty() || r.clients.is_empty() {
            self.errors.push(PolicyError {
                at: self.at(raw),
                kind: ErrorKind::RadiusEmpty,
            });
        }
        let listen = r
            .listen
            .iter()
            .filter_map(|a| self.socket_addr(a))
            .collect();
        let mut clients = Vec::new();
        for c in &r.clients {
            let text = c.value.address.value.trim();
            let network = text
                .parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| text.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
            match network {
                Some(network) => clients.push(RadiusClient {
                    network: network.trunc(),
                    secret_file: self.base.join(c.value.secret_file.value.trim()),
                }),
                None => self.error(
                    &c.value.address,
                    ErrorKind::RadiusClient {
                        value: c.value.address.value.clone(),
                    },
                ),
            }
        }
        (self.errors.len() == errors_before).then_some(Radius { listen, clients })
    }

    fn ldap(&mut self, raw: &S<RawLdap>) -> Option<Ldap> {
        let l = &raw.value;
        let errors_before = self.errors.len();
        let url = l.url.value.trim();
        let host = url
            .strip_prefix("ldaps://")
            .or_else(|| url.strip_prefix("ldap://"))
            .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace));
        if host.is_none() {
            self.error(
                &l.url,
                ErrorKind::LdapUrl {
                    value: l.url.value.clone(),
                },
            );
        } else if url.starts_with("ldap://") && !l.start_tls {
            self.error(
                &l.url,
                ErrorKind::LdapInClear {
                    value: l.url.value.clone(),
                },
            );
        }
        if l.pupils.is_empty() && l.staff.is_empty() {
            self.errors.push(PolicyError {
                at: self.at(raw),
                kind: ErrorKind::LdapNoRoles,
            });
        }
        let sync_minutes = match &l.sync_minutes {
            Some(m) if !(1..=1440).contains(&m.value) => {
                self.error(m, ErrorKind::SyncMinutes { value: m.value });
                DEFAULT_LDAP_SYNC_MINUTES
            }
            Some(m) => m.value,
            None => DEFAULT_LDAP_SYNC_MINUTES,
        };
        let text = |s: &S<String>| s.value.trim().to_owned();
        let attribute = |a: Option<&S<String>>, default: &str| {
            a.map_or_else(|| default.to_owned(), |a| a.value.trim().to_owned())
        };
        let attrs = l.attributes.as_ref();
        let base_dn = text(&l.base_dn);
        let ldap = Ldap {
            url: url.to_owned(),
            start_tls: l.start_tls,
            ca_file: l.ca_file.as_ref().map(|f| self.base.join(f.value.trim())),
            bind_dn: text(&l.bind_dn),
            password_file: self.base.join(l.password_file.value.trim()),
            filter: l
                .filter
                .as_ref()
                .map_or_else(|| DEFAULT_LDAP_FILTER.to_owned(), text),
            groups_base_dn: l
                .groups_base_dn
                .as_ref()
                .map_or_else(|| base_dn.clone(), text),
            groups_filter: l
                .groups_filter
                .as_ref()
                .map_or_else(|| DEFAULT_LDAP_GROUPS_FILTER.to_owned(), text),
            base_dn,
            username: attribute(attrs.and_then(|a| a.username.as_ref()), "sAMAccountName"),
            display_name: attribute(attrs.and_then(|a| a.display_name.as_ref()), "displayName"),
            class: attrs.and_then(|a| a.class.as_ref()).map(text),
            year: attrs.and_then(|a| a.year.as_ref()).map(text),
            pupils: l.pupils.iter().map(text).collect(),
            staff: l.staff.iter().map(text).collect(),
            sync_minutes,
        };
        (self.errors.len() == errors_before).then_some(ldap)
    }
}
