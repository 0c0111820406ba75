#!/bin/sh
# schoolgate sign-in for macOS and Linux: tells the gateway who signed in on this computer, so
# the policy's rules for that person apply to it. Run at login (a LaunchAgent, an
# /etc/profile.d script, a display manager's session hook) as `logon.sh logon`, and at logout
# as `logon.sh logoff`. The token is the one `schoolgate-agent sign-in-token NAME` printed;
# the gateway signs a person in only at the address the report comes from.
# SCHOOLGATE_GATEWAY, SCHOOLGATE_TOKEN and SCHOOLGATE_CA override the values below.
# A school laptop that goes home reports to the gateway's public off-site listener instead,
# by the off-site id its DNS profile carries: set SCHOOLGATE_GATEWAY to that listener
# (https://dns.school.example) and SCHOOLGATE_DEVICE to the id; it then works at school too.
set -u
event=${1:-logon}
gateway=${SCHOOLGATE_GATEWAY:-https://gateway.school.example:8443}
token=${SCHOOLGATE_TOKEN:-sgs_REPLACE_WITH_THE_TOKEN}
ca=${SCHOOLGATE_CA:-}
device=${SCHOOLGATE_DEVICE:-}
case $event in logon | logoff) ;; *) echo "usage: $0 logon|logoff" >&2; exit 2 ;; esac
user=${USER:-$(id -un)}
host=$(hostname 2>/dev/null || echo unknown)
# JSON strings: a username or host name with a quote or backslash is escaped.
json() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
body=$(printf '{"user": "%s", "event": "%s", "host": "%s"}' "$(json "$user")" "$event" "$(json "$host")")
# A login never waits on the gateway for long.
exec curl -sS --max-time 5 ${ca:+--cacert "$ca"} -o /dev/null -w '%{http_code}\n' \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data-binary "$body" "$gateway/api/v1/sign-in${device:+/$device}"
