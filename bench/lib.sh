# Pieces the bench scripts share; sourced, not run.

# An Unbound configuration for the benches, as the bench's rival to schoolgate: listening on
# 127.0.0.1@PORT, its files in DIR, two threads, forwarding only (no iteration, no
# hardening that would send extra queries upstream) to the fake upstream at
# 127.0.0.53@53, caches large enough for a run, and each domain in the file BLOCKED (one a
# line) answered NXDOMAIN, as schoolgate's rule answers it.
unbound_conf() { # DIR PORT BLOCKED
    cat <<CONF
server:
    interface: 127.0.0.1@$2
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    pidfile: ""
    directory: "$1"
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 2
    module-config: "iterator"
    do-not-query-localhost: no
    msg-cache-size: 64m
    rrset-cache-size: 128m
    qname-minimisation: no
    harden-referral-path: no
CONF
    sed 's/.*/    local-zone: "&." always_nxdomain/' "$3"
    cat <<CONF
forward-zone:
    name: "."
    forward-addr: 127.0.0.53@53
CONF
}
