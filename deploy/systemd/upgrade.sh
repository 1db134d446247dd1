#!/bin/sh
# Zero-downtime binary upgrade of berry-gateway with Pingora's socket hand-over.
#
# Install as /usr/local/lib/berry-gateway/upgrade.sh (mode 0755). Three ways to call it:
#
#   upgrade.sh [--unit NAME]        (root, systemd; default unit berry-gateway-daemon.service)
#       Install the new binary at /usr/local/bin/berry-gateway first. This asks for an
#       upgrade and runs `systemctl reload NAME`; the unit's ExecReload hook (below) then
#       swaps processes inside the unit, so systemd keeps supervising the new process.
#
#   upgrade.sh --reload-hook MAINPID   (ExecReload= of berry-gateway-daemon.service)
#       Upgrade requested -> swap. Otherwise -> kill -HUP MAINPID (config reload).
#
#   upgrade.sh --standalone         (no systemd; the gateway runs with -d)
#       Swap now, reading the old PID from pid_file.
#
# The swap, following Pingora's graceful upgrade:
#   1. start `berry-gateway ... -d -u`: it loads and validates the config, then listens on
#      upgrade_sock and waits (upgrade_sock_connect_accept_max_retries x 1 s) for the sockets;
#   2. once upgrade_sock exists, SIGQUIT the old process: it sends its listening sockets
#      over upgrade_sock, keeps serving for a few seconds, then stops accepting and finishes
#      in-flight requests and streams (at most grace_period_seconds; it exits as soon as
#      none is left);
#   3. the new process daemonizes and writes pid_file (the old file becomes *.old).
# If the new process dies before step 2 (bad config, bad binary), the old one is never
# signalled and keeps serving. Both processes accept on the same sockets during the
# overlap, so no connection is refused.
#
# Paths can be overridden with BERRY_BIN, BERRY_CONFIG, PINGORA_CONF, PID_FILE, UPGRADE_SOCK;
# PID_FILE and UPGRADE_SOCK default to pid_file / upgrade_sock of PINGORA_CONF.
set -eu

BERRY_BIN=${BERRY_BIN:-/usr/local/bin/berry-gateway}
BERRY_CONFIG=${BERRY_CONFIG:-/etc/berry-gateway/berry.toml}
PINGORA_CONF=${PINGORA_CONF:-/etc/berry-gateway/pingora.yaml}
UNIT=berry-gateway-daemon.service

log() { echo "upgrade.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Value of a top-level `key: value` line of the Pingora YAML.
conf_value() {
    sed -n "s/^$1:[[:space:]]*\([^#[:space:]]*\).*/\1/p" "$PINGORA_CONF" | tr -d "\"'" | head -n 1
}

PID_FILE=${PID_FILE:-$(conf_value pid_file)}
UPGRADE_SOCK=${UPGRADE_SOCK:-$(conf_value upgrade_sock)}
PID_FILE=${PID_FILE:-/tmp/pingora.pid}
UPGRADE_SOCK=${UPGRADE_SOCK:-/tmp/pingora_upgrade.sock}
# Marker that turns the next `systemctl reload` into an upgrade (same directory as the
# PID file: /run/berry-gateway, writable by the service).
REQUEST=$(dirname "$PID_FILE")/upgrade-requested

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

swap() {
    old=$1
    alive "$old" || die "old process $old is not running"
    [ -x "$BERRY_BIN" ] || die "$BERRY_BIN is not executable"
    log "starting $("$BERRY_BIN" --version) to take over from pid $old"
    # A stale socket would look like a ready new process.
    rm -f "$UPGRADE_SOCK"
    "$BERRY_BIN" --config "$BERRY_CONFIG" -c "$PINGORA_CONF" -d -u &
    launcher=$!
    # The new process validates its config and resolves provider hosts before it listens
    # on the upgrade socket: do not signal the old one before that (up to 60 s).
    n=0
    until [ -S "$UPGRADE_SOCK" ]; do
        if ! alive "$launcher" || [ "$n" -ge 600 ]; then
            kill "$launcher" 2>/dev/null || true
            wait "$launcher" 2>/dev/null || true
            die "new process did not become ready; pid $old keeps serving"
        fi
        n=$((n + 1))
        sleep 0.1
    done
    log "new process listens on $UPGRADE_SOCK; SIGQUIT to pid $old"
    kill -QUIT "$old"
    # The launcher exits once it holds the sockets and has forked the daemon.
    wait "$launcher" || die "new process failed after the hand-over (pid $old is draining)"
    n=0
    while :; do
        new=$(cat "$PID_FILE" 2>/dev/null || true)
        if [ -n "$new" ] && [ "$new" != "$old" ] && alive "$new"; then
            break
        fi
        [ "$n" -lt 100 ] || die "no new pid in $PID_FILE"
        n=$((n + 1))
        sleep 0.1
    done
    log "upgrade done: pid $new serves; pid $old finishes its in-flight requests, then exits"
}

case "${1:-}" in
--reload-hook)
    [ $# -eq 2 ] || die "usage: upgrade.sh --reload-hook MAINPID"
    if [ -e "$REQUEST" ]; then
        rm -f "$REQUEST"
        swap "$2"
    else
        kill -HUP "$2"
    fi
    ;;
--standalone)
    old=$(cat "$PID_FILE" 2>/dev/null) || die "cannot read $PID_FILE"
    swap "$old"
    ;;
"" | --unit)
    if [ "${1:-}" = --unit ]; then
        [ $# -eq 2 ] || die "usage: upgrade.sh --unit NAME"
        UNIT=$2
    fi
    systemctl is-active --quiet "$UNIT" || die "$UNIT is not running"
    old=$(systemctl show --property=MainPID --value "$UNIT")
    # The service user may remove it: /run/berry-gateway is its directory.
    touch "$REQUEST"
    log "upgrading $UNIT (main pid $old)"
    if ! systemctl reload "$UNIT"; then
        rm -f "$REQUEST"
        die "upgrade failed; see: journalctl -u $UNIT"
    fi
    rm -f "$REQUEST"
    new=$(systemctl show --property=MainPID --value "$UNIT")
    [ "$new" != "$old" ] ||
        die "main pid unchanged: does $UNIT use ExecReload=upgrade.sh --reload-hook (berry-gateway-daemon.service)?"
    log "$UNIT main pid is now $new"
    ;;
*)
    die "usage: upgrade.sh [--unit NAME] | --reload-hook MAINPID | --standalone"
    ;;
esac
