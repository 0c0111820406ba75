# Pieces the bench scripts share; sourced, not run.

# The `server:` section of an Unbound configuration for the benches: listening on
# 127.0.0.1@PORT, its files in DIR, two threads, forwarding only (no iteration, no
# hardening that would send extra queries upstream), and caches large enough for a run.
unbound_server_conf() { # DIR PORT
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
}
