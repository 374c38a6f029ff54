#!/usr/bin/env bash
# hostbgp lab: a bird2 router and a host running hostbgp, each in its own network
# namespace. Nothing is added to the machine's own namespace.
#
#   scripts/lab.sh demo   build, bring the lab up, show what the router learned, tear down
#   scripts/lab.sh up     bring the lab up and leave it running (prints how to inspect)
#   scripts/lab.sh down   tear down the lab you left with `up` (not other users')
#
# Needs root (sudo). Installs bird2 and iputils-ping with apt-get when missing.
# Builds with `cargo build --release`, as the user running sudo when root has no
# cargo (a per-user rustup); HOSTBGP_BIN=/path/to/hostbgp skips the build.
#
# Topology (documentation address ranges only):
#   router ns  <hblabN-r>  eth0 198.51.100.2/24, 2001:db8:ff::1/64   bird2, AS 65000
#   host ns    <hblabN-h>  eth0 198.51.100.1/24, 2001:db8:ff::2/64   hostbgp, AS 65010
#                          lxdbr0 203.0.113.1/24, 2001:db8:100::1/64 (no NAT)
set -euo pipefail

STATE_DIR=/run/hostbgp-lab
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Labs are per user: `down` leaves other users' labs alone.
CALLER=${SUDO_USER:-$(id -un)}
# shellcheck source=scripts/cargo-user.sh
. "$ROOT/scripts/cargo-user.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "lab.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"; }

install_deps() {
    local missing=()
    command -v bird >/dev/null || missing+=(bird2)
    command -v ping >/dev/null || missing+=(iputils-ping)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

build() {
    if [ -n "${HOSTBGP_BIN:-}" ]; then
        BIN=$HOSTBGP_BIN
    else
        find_cargo || die "cannot build; or set HOSTBGP_BIN=/path/to/hostbgp"
        say "building hostbgp (cargo build --release)"
        (cd "$ROOT" && "${AS_BUILDER[@]}" cargo build --release --bin hostbgp)
        BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/hostbgp"
    fi
    [ -x "$BIN" ] || die "no hostbgp binary at $BIN"
}

# ids of labs brought up by `up` (state files), plus this run's id
lab_vars() {
    ID=$1
    R=${ID}-r
    H=${ID}-h
    DIR=$STATE_DIR/$ID
}

up() {
    local id=$1
    lab_vars "$id"
    mkdir -p "$DIR"
    echo "$BIN" > "$DIR/bin"
    echo "$CALLER" > "$DIR/owner"

    say "namespaces $R (router) and $H (host)"
    ip netns add "$R"
    ip netns add "$H"
    for ns in "$R" "$H"; do
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    # veth created inside the router ns, peer moved straight into the host ns
    ip -n "$R" link add eth0 type veth peer name eth0 netns "$H"
    ip -n "$R" addr add 198.51.100.2/24 dev eth0
    ip -n "$R" addr add 2001:db8:ff::1/64 dev eth0 nodad
    ip -n "$H" addr add 198.51.100.1/24 dev eth0
    ip -n "$H" addr add 2001:db8:ff::2/64 dev eth0 nodad
    ip -n "$R" link set eth0 up
    ip -n "$H" link set eth0 up

    # the bridge, kept up by a port (as LXD does with its dummy)
    ip -n "$H" link add lxdbr0 type bridge
    ip -n "$H" link add lxdbr0-mtu type veth peer name lxdbr0-peer
    ip -n "$H" link set lxdbr0-mtu master lxdbr0
    ip -n "$H" link set lxdbr0-mtu up
    ip -n "$H" link set lxdbr0-peer up
    ip -n "$H" link set lxdbr0 up
    ip -n "$H" addr add 203.0.113.1/24 dev lxdbr0
    ip -n "$H" addr add 2001:db8:100::1/64 dev lxdbr0 nodad

    cat > "$DIR/bird.conf" <<EOF
log "$DIR/bird.log" all;
router id 198.51.100.2;
protocol device { scan time 2; }
protocol kernel kernel4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol bgp host1 {
  local as 65000;
  neighbor 2001:db8:ff::2 as 65010;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 4;
  graceful restart on;
  ipv4 { import all; export none; extended next hop on; };
  ipv6 { import all; export none; };
}
EOF
    cat > "$DIR/hostbgp.yaml" <<EOF
config:
  core.bgp_address: "[::]:179"
  core.bgp_asn: "65010"
  core.bgp_routerid: 198.51.100.1
networks:
  lxdbr0:
    type: bridge
    config:
      ipv4.nat: "false"
      ipv6.nat: "false"
      bgp.peers.router.address: 2001:db8:ff::1
      bgp.peers.router.asn: "65000"
EOF

    say "starting bird2 (AS 65000) in $R"
    ip netns exec "$R" bird -c "$DIR/bird.conf" -s "$DIR/bird.ctl" -P "$DIR/bird.pid"

    say "starting hostbgp (AS 65010) in $H"
    ip netns exec "$H" "$BIN" run --config "$DIR/hostbgp.yaml" --socket "$DIR/hostbgp.sock" \
        --member host >"$DIR/hostbgp.log" 2>&1 &
    echo $! > "$DIR/hostbgp.pid"

    say "waiting for the BGP session"
    local i
    for i in $(seq 1 60); do
        if birdc -s "$DIR/bird.ctl" show protocols host1 2>/dev/null | grep -q Established; then
            echo "session established"
            sleep 1 # let the initial UPDATEs and End-of-RIB arrive
            return 0
        fi
        if ! kill -0 "$(cat "$DIR/hostbgp.pid")" 2>/dev/null; then
            echo "hostbgp exited; its log:" >&2
            tail -n 30 "$DIR/hostbgp.log" >&2 || true
            return 1
        fi
        [ "$i" -eq 60 ] || sleep 0.5
    done
    echo "session not established after 30 s; hostbgp log:" >&2
    tail -n 30 "$DIR/hostbgp.log" >&2 || true
    return 1
}

show() {
    local id=$1
    lab_vars "$id"
    local bin
    bin=$(cat "$DIR/bin")
    say "router: birdc show protocols"
    birdc -s "$DIR/bird.ctl" show protocols
    say "router: birdc show route"
    birdc -s "$DIR/bird.ctl" show route
    say "router: kernel routes learned over BGP (ip route / ip -6 route)"
    ip -n "$R" route show 203.0.113.0/24
    ip -n "$R" -6 route show 2001:db8:100::/64
    say "host: hostbgp status"
    ip netns exec "$H" "$bin" status --socket "$DIR/hostbgp.sock" || true
}

down_one() {
    local id=$1
    lab_vars "$id"
    local pidf ns pid
    for pidf in "$DIR/hostbgp.pid" "$DIR/bird.pid"; do
        if [ -s "$pidf" ]; then
            kill "$(cat "$pidf")" 2>/dev/null || true
        fi
    done
    for ns in "$H" "$R"; do
        if ip netns list | grep -qw "^$ns"; then
            for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns"
        fi
    done
    rm -rf "$DIR"
}

# The ids of the labs `up` left for the caller.
my_labs() {
    local d
    for d in "$STATE_DIR"/hblab*; do
        [ -d "$d" ] || continue
        # Labs from before owners were recorded were root's.
        [ "$(cat "$d/owner" 2>/dev/null || echo root)" = "$CALLER" ] && basename "$d"
    done
    return 0
}

down() {
    local id found=0 others
    for id in $(my_labs); do
        found=1
        echo "tearing down $id"
        down_one "$id"
    done
    [ "$found" -eq 1 ] || echo "no lab of $CALLER is up"
    others=$( (compgen -G "$STATE_DIR/hblab*" || true) | wc -l)
    [ "$others" -eq 0 ] || echo "left alone: $others lab(s) of other users"
}

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

main() {
    [ $# -eq 1 ] || usage
    case "$1" in
    demo)
        need_root
        install_deps
        build
        local id="hblab$$"
        trap 'down_one '"$id" EXIT
        up "$id"
        show "$id"
        say "tearing down"
        ;;
    up)
        need_root
        install_deps
        build
        if [ -n "$(my_labs)" ]; then
            die "your lab $(my_labs) is already up; run: $0 down"
        fi
        local id="hblab$$"
        if ! up "$id"; then
            down_one "$id"
            exit 1
        fi
        show "$id"
        lab_vars "$id"
        cat <<EOF

Lab $id is up. Inspect it with:
  birdc -s $DIR/bird.ctl show route all
  birdc -s $DIR/bird.ctl show protocols all host1
  ip netns exec $H $BIN status --socket $DIR/hostbgp.sock
  ip -n $R route; ip -n $R -6 route
  ip -n $H addr add 192.0.2.1/24 dev lxdbr0      # watch it appear at the router
  tail -f $DIR/hostbgp.log $DIR/bird.log
Tear it down with: $0 down
EOF
        ;;
    down)
        need_root
        down
        ;;
    *) usage ;;
    esac
}

main "$@"
