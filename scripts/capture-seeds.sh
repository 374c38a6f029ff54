#!/usr/bin/env bash
# Captures real BGP messages from FRR, GoBGP and bird2 sessions and writes the distinct
# ones as seeds of the decode_message fuzz target (fuzz/seeds/decode_message).
#
#   sudo scripts/capture-seeds.sh            capture, then write new seeds
#   sudo scripts/capture-seeds.sh --dry-run  capture and list what would be written
#
# Needs root (network namespaces). Installs frr, bird2, tcpdump with apt-get when
# missing (FRR's own service is never enabled or started: zebra and bgpd run by hand
# inside a namespace with their own config, pid, zserv and vty paths). gobgpd/gobgp
# must be on PATH (Debian's gobgpd package when it is not). HOSTBGP_BIN=/path skips
# `cargo build`. KEEP=1 keeps the work dir (configs, logs, pcaps).
#
# Everything lives in network namespaces named hbs<pid>{b,f,g,h}, deleted on exit
# (also on failure); nothing is added to the machine's own namespace, and only
# documentation ranges are used.
#
#   b  bird2   AS 65000         rid 198.51.100.1
#   f  FRR     AS 65001         rid 198.51.100.2   (zebra + bgpd)
#   g  GoBGP   AS 4200000002    rid 198.51.100.3   (4-octet AS: OPEN carries AS_TRANS)
#   h  hostbgp AS 65010         rid 198.51.100.10  bridge br0 203.0.113.193/26, 2001:db8:100::1/64
#
#   b 192.0.2.1/30  2001:db8:1::1/64  <->  f 192.0.2.2   2001:db8:1::2
#   b 192.0.2.5/30  2001:db8:2::1/64  <->  g 192.0.2.6   2001:db8:2::2
#   h 192.0.2.9/30  2001:db8:3::1/64  <->  f 192.0.2.10  2001:db8:3::2
#   h 192.0.2.13/30 2001:db8:4::1/64  <->  g 192.0.2.14  2001:db8:4::2
#
# Sessions:
#   FRR<->bird   over IPv4, eBGP: ipv4 unicast, add-path both ways, graceful restart
#   FRR<->bird   over IPv6, iBGP (bird uses local AS 65001): ipv6 unicast, and ipv4
#                unicast with extended next hop (RFC 8950); LOCAL_PREF
#   GoBGP<->bird over IPv4, eBGP: ipv4 unicast, add-path, graceful restart
#   GoBGP<->bird over IPv6, iBGP (bird uses local AS 4200000002): ipv6 + ipv4 (RFC 8950)
#   FRR<->hostbgp over IPv6 (both families, extended next hop), GoBGP<->hostbgp over IPv4
# Routes carry communities, large communities, extended communities, MED, LOCAL_PREF,
# AS_PATH prepends; then some are withdrawn, route refreshes are asked for both ways
# (bird and FRR speak enhanced route refresh, so BoRR/EoRR too), and sessions end with
# administrative shutdowns (with a shutdown communication) and daemon stops.
#
# tcpdump captures port 179 in the FRR and GoBGP namespaces; the TCP streams are
# reassembled (python, below), split into messages by the header length, and every
# message sent by FRR, GoBGP or bird is classified by shape (type, capabilities,
# families, attributes, add-path, notification code); one seed is written per shape,
# skipping bytes that are already a seed. Seed names: <frr|gobgp|bird>_<type>_<shape>.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEEDS=$ROOT/fuzz/seeds/decode_message
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1

P=hbs$$
NB=${P}b NF=${P}f NG=${P}g NH=${P}h
WORK=$(mktemp -d /tmp/capture-seeds.XXXXXX)
chmod 755 "$WORK"  # FRR drops to user frr
PIDS=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "capture-seeds.sh: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    set +e
    # Every process started here runs inside one of our namespaces.
    for ns in "$NB" "$NF" "$NG" "$NH"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null
    done
    sleep 1
    for ns in "$NB" "$NF" "$NG" "$NH"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "$NB" "$NF" "$NG" "$NH"; do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"

install_deps() {
    local missing=()
    [ -x /usr/lib/frr/bgpd ] || missing+=(frr)
    command -v bird >/dev/null || missing+=(bird2)
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    command -v gobgpd >/dev/null || missing+=(gobgpd)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        # policy-rc.d 101: packages may not start their services
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.capture-seeds
        chmod +x /usr/sbin/policy-rc.d.capture-seeds
        local had_policy=0
        [ -e /usr/sbin/policy-rc.d ] && had_policy=1
        [ $had_policy = 1 ] || cp /usr/sbin/policy-rc.d.capture-seeds /usr/sbin/policy-rc.d
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
        rm -f /usr/sbin/policy-rc.d.capture-seeds
    fi
    command -v gobgp >/dev/null || die "gobgp CLI missing"
}

build() {
    if [ -n "${HOSTBGP_BIN:-}" ]; then
        BIN=$HOSTBGP_BIN
    else
        say "building hostbgp"
        (cd "$ROOT" && cargo build --bin hostbgp)
        BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/hostbgp"
    fi
    [ -x "$BIN" ] || die "no hostbgp binary at $BIN"
}

# nsx NS CMD...
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# link NS1 IF1 ADDR4 ADDR6 NS2 IF2 ADDR4 ADDR6: a veth created in NS1, its peer moved
# straight into NS2.
link() {
    ip -n "$1" link add "$2" type veth peer name "$6" netns "$5"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" addr add "$4" dev "$2" nodad
    ip -n "$5" addr add "$7" dev "$6"
    ip -n "$5" addr add "$8" dev "$6" nodad
    ip -n "$1" link set "$2" up
    ip -n "$5" link set "$6" up
}

topology() {
    say "namespaces $NB (bird) $NF (FRR) $NG (GoBGP) $NH (hostbgp)"
    for ns in "$NB" "$NF" "$NG" "$NH"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    link "$NB" to_f 192.0.2.1/30 2001:db8:1::1/64 "$NF" to_b 192.0.2.2/30 2001:db8:1::2/64
    link "$NB" to_g 192.0.2.5/30 2001:db8:2::1/64 "$NG" to_b 192.0.2.6/30 2001:db8:2::2/64
    link "$NH" to_f 192.0.2.9/30 2001:db8:3::1/64 "$NF" to_h 192.0.2.10/30 2001:db8:3::2/64
    link "$NH" to_g 192.0.2.13/30 2001:db8:4::1/64 "$NG" to_h 192.0.2.14/30 2001:db8:4::2/64
    # hostbgp's bridge, kept up by a veth port (as LXD does with its dummy)
    ip -n "$NH" link add br0 type bridge
    ip -n "$NH" link add br0-port type veth peer name br0-peer
    ip -n "$NH" link set br0-port master br0
    ip -n "$NH" addr add 203.0.113.193/26 dev br0
    ip -n "$NH" addr add 2001:db8:100::1/64 dev br0 nodad
    for l in br0 br0-port br0-peer; do ip -n "$NH" link set "$l" up; done
}

capture() {
    say "tcpdump on port 179 in $NF and $NG"
    for ns in "$NF" "$NG"; do
        nsx "$ns" tcpdump -i any -s 0 -U -n -w "$WORK/$ns.pcap" tcp port 179 \
            >"$WORK/tcpdump-$ns.log" 2>&1 &
        PIDS+=($!)
    done
    sleep 2
}

start_bird() {
    cat >"$WORK/bird.conf" <<'EOF'
router id 198.51.100.1;
protocol device { scan time 5; }
protocol static s4 { ipv4; route 198.51.100.0/26 blackhole; route 198.51.100.192/26 blackhole; }
protocol static s6 { ipv6; route 2001:db8:b00::/48 blackhole; route 2001:db8:b01::/48 blackhole; }
function add_tags() {
  bgp_community.add((65000, 10));
  bgp_community.add((65000, 20));
  bgp_large_community.add((65000, 1, 2));
  bgp_ext_community.add((rt, 65000, 7));
  bgp_med = 20;
}
filter out4 { if source != RTS_STATIC then reject; if net ~ [ 198.51.100.0/26 ] then add_tags(); accept; }
filter out6 { if source != RTS_STATIC then reject; if net ~ [ 2001:db8:b00::/48 ] then add_tags(); accept; }
template bgp common {
  graceful restart on;
  enable extended messages on;
  hold time 90;
}
# eBGP over IPv4 with add-path; iBGP over IPv6 with both families (RFC 8950).
template bgp ebgp4 from common {
  ipv4 { import all; export filter out4; add paths on; };
}
template bgp ibgp6 from common {
  ipv6 { import all; export filter out6; next hop self; };
  ipv4 { import all; export filter out4; extended next hop on; next hop self; };
}
protocol bgp frr4 from ebgp4 { local 192.0.2.1 as 65000; neighbor 192.0.2.2 as 65001; }
protocol bgp frr6 from ibgp6 { local 2001:db8:1::1 as 65001; neighbor 2001:db8:1::2 as 65001; }
protocol bgp gobgp4 from ebgp4 { local 192.0.2.5 as 65000; neighbor 192.0.2.6 as 4200000002; }
protocol bgp gobgp6 from ibgp6 {
  local 2001:db8:2::1 as 4200000002; neighbor 2001:db8:2::2 as 4200000002;
}
EOF
    nsx "$NB" bird -f -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid" \
        >"$WORK/bird.log" 2>&1 &
    PIDS+=($!)
}
birdc_() { birdc -s "$WORK/bird.ctl" "$@"; }

start_frr() {
    local d=$WORK/frr
    mkdir -p "$d"
    cat >"$d/zebra.conf" <<EOF
hostname seedfrr
log file $d/zebra.log
EOF
    cat >"$d/bgpd.conf" <<EOF
frr defaults traditional
hostname seedfrr
log file $d/bgpd.log
!
route-map TAG permit 10
 set community 65001:100 65001:200
 set large-community 65001:1:1 65001:2:2
 set extcommunity rt 65001:7
 set metric 50
 set local-preference 200
 set as-path prepend 65001 65001
 set origin incomplete
!
router bgp 65001
 bgp router-id 198.51.100.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor 192.0.2.1 remote-as 65000
 neighbor 2001:db8:1::1 remote-as 65001
 neighbor 2001:db8:1::1 capability extended-nexthop
 neighbor 2001:db8:3::1 remote-as 65010
 neighbor 2001:db8:3::1 capability extended-nexthop
 !
 address-family ipv4 unicast
  network 203.0.113.0/26 route-map TAG
  network 203.0.113.64/26
  neighbor 192.0.2.1 activate
  neighbor 192.0.2.1 addpath-tx-all-paths
  neighbor 2001:db8:1::1 activate
  neighbor 2001:db8:3::1 activate
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:f00::/48 route-map TAG
  network 2001:db8:f01::/48
  neighbor 2001:db8:1::1 activate
  neighbor 2001:db8:3::1 activate
 exit-address-family
!
EOF
    chown -R frr:frr "$d"
    nsx "$NF" /usr/lib/frr/zebra -f "$d/zebra.conf" -i "$d/zebra.pid" -z "$d/zserv.api" \
        --vty_socket "$d" -P 0 >"$d/zebra.out" 2>&1 &
    PIDS+=($!)
    sleep 1
    nsx "$NF" /usr/lib/frr/bgpd -f "$d/bgpd.conf" -i "$d/bgpd.pid" -z "$d/zserv.api" \
        --vty_socket "$d" -P 0 >"$d/bgpd.out" 2>&1 &
    PIDS+=($!)
}
vtysh_() { nsx "$NF" vtysh --vty_socket "$WORK/frr" -d bgpd "$@"; }

# A gobgpd.toml [[neighbors]] entry: ADDRESS PEER_AS LOCAL_ADDRESS AFI_SAFI...
gobgp_neighbor() {
    local address=$1 peer_as=$2 local_address=$3 afi_safi
    shift 3
    printf '\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "%s"\n    peer-as = %s\n' \
        "$address" "$peer_as"
    printf '  [neighbors.transport.config]\n    local-address = "%s"\n' "$local_address"
    for afi_safi in "$@"; do
        printf '  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = "%s"\n' \
            "$afi_safi"
    done
}

start_gobgp() {
    cat >"$WORK/gobgpd.toml" <<'EOF'
[global.config]
  as = 4200000002
  router-id = "198.51.100.3"
  port = 179

[[neighbors]]
  [neighbors.config]
    neighbor-address = "192.0.2.5"
    peer-as = 65000
  [neighbors.transport.config]
    local-address = "192.0.2.6"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 90
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
EOF
    gobgp_neighbor 2001:db8:2::1 4200000002 2001:db8:2::2 ipv6-unicast ipv4-unicast \
        >>"$WORK/gobgpd.toml"
    gobgp_neighbor 192.0.2.13 65010 192.0.2.14 ipv4-unicast ipv6-unicast >>"$WORK/gobgpd.toml"
    ip netns exec "$NG" gobgpd -f "$WORK/gobgpd.toml" --api-hosts 127.0.0.1:50051 \
        >"$WORK/gobgpd.log" 2>&1 &
    GOBGPD=$!
    PIDS+=($!)
}
gobgp_() { nsx "$NG" gobgp -u 127.0.0.1 -p 50051 "$@"; }

start_hostbgp() {
    cat >"$WORK/hostbgp.yaml" <<'EOF'
config:
  core.bgp_address: "[::]:179"
  core.bgp_asn: "65010"
  core.bgp_routerid: 198.51.100.10
networks:
  br0:
    type: bridge
    config:
      ipv4.nat: "false"
      ipv6.nat: "false"
      bgp.peers.frr.address: "2001:db8:3::2"
      bgp.peers.frr.asn: "65001"
      bgp.peers.gobgp.address: "192.0.2.14"
      bgp.peers.gobgp.asn: "4200000002"
EOF
    nsx "$NH" "$BIN" run --config "$WORK/hostbgp.yaml" --socket "$WORK/hostbgp.sock" \
        >"$WORK/hostbgp.log" 2>&1 &
    PIDS+=($!)
}

# wait_for DESC SECONDS CMD...: polls CMD until it succeeds
wait_for() {
    local desc=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "timed out waiting for $desc"
}
bird_up() { [ "$(birdc_ show protocols | grep -c Established)" -eq 4 ]; }
frr_up() { [ "$(vtysh_ -c 'show bgp summary json' | grep -c '"state":"Established"')" -ge 4 ]; }
frr6_up() { birdc_ show protocols frr6 | grep -q Established; }
gobgp_up() { [ "$(gobgp_ neighbor | grep -c Establ)" -eq 3 ]; }

sessions() {
    say "starting bird, FRR, GoBGP, hostbgp"
    start_bird
    start_frr
    start_gobgp
    start_hostbgp
    wait_for "gobgpd API" 20 gobgp_ global
    gobgp_ global rib add -a ipv4 198.51.100.128/25 origin igp med 30 local-pref 150 \
        community 65002:100,no-export large-community 4200000002:1:2 aspath 65099
    gobgp_ global rib add -a ipv4 198.51.100.64/26
    gobgp_ global rib add -a ipv6 2001:db8:e00::/48 origin egp med 40 \
        community 65002:100 large-community 4200000002:1:2
    gobgp_ global rib add -a ipv6 2001:db8:e01::/48
    wait_for "bird's 4 sessions" 90 bird_up
    wait_for "FRR's sessions" 90 frr_up
    wait_for "GoBGP's 3 sessions" 90 gobgp_up
    birdc_ show protocols
    gobgp_ neighbor
    sleep 4

    say "withdrawals"
    vtysh_ -c 'conf t' -c 'router bgp 65001' -c 'address-family ipv4 unicast' \
        -c 'no network 203.0.113.64/26' -c 'exit-address-family' \
        -c 'address-family ipv6 unicast' -c 'no network 2001:db8:f01::/48'
    gobgp_ global rib del -a ipv4 198.51.100.64/26
    gobgp_ global rib del -a ipv6 2001:db8:e01::/48
    birdc_ disable s4
    birdc_ disable s6
    sleep 3
    birdc_ enable s4
    birdc_ enable s6

    say "route refresh"
    for p in frr4 frr6 gobgp4 gobgp6; do birdc_ reload in "$p"; done
    vtysh_ -c 'clear bgp 192.0.2.1 soft in' -c 'clear bgp 2001:db8:1::1 soft in'
    gobgp_ neighbor 192.0.2.5 softresetin
    gobgp_ neighbor 2001:db8:2::1 softresetin -a ipv6
    sleep 4

    say "shutdowns"
    # administrative shutdowns with a shutdown communication (RFC 9003)
    vtysh_ -c 'conf t' -c 'router bgp 65001' \
        -c 'neighbor 192.0.2.1 shutdown message seed capture: FRR admin shutdown'
    gobgp_ neighbor 192.0.2.5 shutdown --reason "seed capture: GoBGP admin shutdown"
    birdc_ disable gobgp6 '"seed capture: bird admin shutdown"'
    # a hard reset by FRR (Cease, Administrative Reset), then the session comes back
    vtysh_ -c 'clear bgp 2001:db8:1::1'
    wait_for "FRR's session to bird over IPv6 again" 60 frr6_up
    sleep 2
    # daemon stops: gobgpd ends its session to hostbgp (Cease, Peer De-configured);
    # bgpd under graceful restart ends its last one (to bird) without a NOTIFICATION
    kill -TERM "$GOBGPD"
    sleep 2
    # hostbgp's shutdown (its Cease to FRR is not a seed: hostbgp is not a real peer)
    nsx "$NH" "$BIN" shutdown --socket "$WORK/hostbgp.sock" || true
    kill -TERM "$(cat "$WORK/frr/bgpd.pid")" || true
    sleep 2
}

extract() {
    say "reassembling streams and writing seeds"
    python3 - "$WORK" "$SEEDS" "$DRY" "$WORK/$NF.pcap" "$WORK/$NG.pcap" <<'PY'
import hashlib, os, struct, sys

work, seeds_dir, dry = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
pcaps = sys.argv[4:]
WHO = {
    "192.0.2.1": "bird", "2001:db8:1::1": "bird", "192.0.2.5": "bird", "2001:db8:2::1": "bird",
    "192.0.2.2": "frr", "2001:db8:1::2": "frr", "192.0.2.10": "frr", "2001:db8:3::2": "frr",
    "192.0.2.6": "gobgp", "2001:db8:2::2": "gobgp", "192.0.2.14": "gobgp",
    "192.0.2.9": "hostbgp", "2001:db8:3::1": "hostbgp", "192.0.2.13": "hostbgp",
}

def ip6(b):
    import ipaddress
    return str(ipaddress.IPv6Address(b))

def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, caplen, wirelen = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16: off + 16 + caplen]
        off += 16 + caplen
        if caplen != wirelen:
            sys.exit(f"{path}: truncated packet in the capture")
        if linktype == 1:      # Ethernet
            proto, l3 = struct.unpack(">H", pkt[12:14])[0], pkt[14:]
        elif linktype == 113:  # Linux cooked v1
            proto, l3 = struct.unpack(">H", pkt[14:16])[0], pkt[16:]
        elif linktype == 276:  # Linux cooked v2
            proto, l3 = struct.unpack(">H", pkt[0:2])[0], pkt[20:]
        else:
            sys.exit(f"{path}: link type {linktype} not handled")
        if proto == 0x0800:
            ihl = (l3[0] & 15) * 4
            total = struct.unpack(">H", l3[2:4])[0]
            if l3[9] != 6:
                continue
            src, dst = ".".join(map(str, l3[12:16])), ".".join(map(str, l3[16:20]))
            tcp = l3[ihl:total]
        elif proto == 0x86DD:
            if l3[6] != 6:
                continue
            plen = struct.unpack(">H", l3[4:6])[0]
            src, dst = ip6(l3[8:24]), ip6(l3[24:40])
            tcp = l3[40:40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield (src, sport, dst, dport), seq, flags, tcp[doff:]

# Reassemble each direction of each connection (one per SYN).
streams = {}
order = []
for path in pcaps:
    for key, seq, flags, payload in packets(path):
        if flags & 0x02:  # SYN: a new connection on this 4-tuple
            streams[key] = {"isn": seq, "segs": {}}
            order.append((key, streams[key]))
            continue
        st = streams.get(key)
        if st is None or not payload:
            continue
        rel = (seq - st["isn"] - 1) % (1 << 32)
        st["segs"].setdefault(rel, payload)

def reassemble(st):
    out = bytearray()
    for rel in sorted(st["segs"]):
        p = st["segs"][rel]
        if rel > len(out):
            break  # a hole: stop at what we have contiguously
        out += p[len(out) - rel:]
    return bytes(out)

def split(buf):
    msgs, i = [], 0
    while i + 19 <= len(buf):
        if buf[i:i + 16] != b"\xff" * 16:
            sys.exit("lost BGP framing in a stream")
        n = struct.unpack(">H", buf[i + 16:i + 18])[0]
        if i + n > len(buf):
            break
        msgs.append(buf[i:i + n])
        i += n
    return msgs

def open_caps(m):
    """[(code, value)] of an OPEN."""
    caps, body = [], m[19:]
    plen, i = body[9], 10
    params = body[i:i + plen]
    j = 0
    while j + 2 <= len(params):
        t, l = params[j], params[j + 1]
        v = params[j + 2:j + 2 + l]
        j += 2 + l
        if t != 2:
            continue
        k = 0
        while k + 2 <= len(v):
            c, cl = v[k], v[k + 1]
            caps.append((c, v[k + 2:k + 2 + cl]))
            k += 2 + cl
    return caps

def addpath(caps):
    """{(afi, safi): send/receive bits}"""
    r = {}
    for c, v in caps:
        if c == 69:
            for k in range(0, len(v) - 3, 4):
                afi, safi, sr = struct.unpack(">HBB", v[k:k + 4])
                r[(afi, safi)] = sr
    return r

FAM = {(1, 1): "ipv4", (2, 1): "ipv6"}
CAP = {1: "mp", 2: "rr", 5: "enhe", 6: "extmsg", 64: "gr", 65: "as4", 69: "addpath",
       70: "enhrr", 71: "llgr", 73: "fqdn", 9: "role", 128: "oldrr", 75: "swver"}
ATTR = {1: "origin", 2: "aspath", 3: "nh", 4: "med", 5: "lp", 8: "comm", 14: "mpreach",
        15: "mpunreach", 16: "extcomm", 32: "lcomm"}
CEASE = {2: "admin_shutdown", 3: "peer_deconfigured", 4: "admin_reset", 6: "other_config_change"}

def update_shape(m, tx_addpath):
    body = m[19:]
    wl = struct.unpack(">H", body[:2])[0]
    al = struct.unpack(">H", body[2 + wl:4 + wl])[0]
    attrs = body[4 + wl:4 + wl + al]
    nlri = body[4 + wl + al:]
    codes, fams, parts = [], [], []
    j = 0
    while j < len(attrs):
        fl, t = attrs[j], attrs[j + 1]
        if fl & 0x10:
            l, h = struct.unpack(">H", attrs[j + 2:j + 4])[0], 4
        else:
            l, h = attrs[j + 2], 3
        v = attrs[j + h:j + h + l]
        codes.append(t)
        if t == 14:
            afi, safi, nhl = struct.unpack(">HBB", v[:4])
            fam = FAM.get((afi, safi), f"afi{afi}_{safi}")
            fams.append(fam)
            if afi == 1 and nhl in (16, 32):
                parts.append("enhe")
            parts.append(f"nh{nhl}")
        elif t == 15:
            afi, safi = struct.unpack(">HB", v[:3])
            fams.append(FAM.get((afi, safi), f"afi{afi}_{safi}"))
            if afi == 1:
                parts.append("mp")  # IPv4 withdrawn in MP_UNREACH (RFC 8950 sessions)
        j += h + l
    if wl == 0 and al == 0 and not nlri:
        return "eor_ipv4", ("eor", "ipv4")
    if codes == [15] and len(attrs) <= 6:
        return f"eor_{fams[0]}", ("eor", fams[0])
    fam = fams[0] if fams else "ipv4"
    kind = "withdraw" if (15 in codes or wl) and 14 not in codes and not nlri else "announce"
    if kind == "announce" and (15 in codes or wl):
        kind = "announce_withdraw"
    ap = (1, 1) in tx_addpath and not fams or any(
        FAM.get(k) == fam for k in tx_addpath)
    names = [ATTR.get(c, f"attr{c}") for c in codes if c in (4, 5, 8, 16, 32)]
    nh = [p for p in parts if p not in ("enhe", "mp")]
    shape = (fam, kind, ap, "enhe" in parts, "nh32" in nh, "mp" in parts)
    desc = "_".join([fam, kind] + (["addpath"] if ap else [])
                    + (["enhe"] if "enhe" in parts else [])
                    + (["mp"] if "mp" in parts else [])
                    + (["lladdr"] if "nh32" in nh else []) + names)
    return desc, shape

# which end sent what: pair the two directions of each connection
shapes = {}
for key, st in order:
    who = WHO.get(key[0])
    if who in (None, "hostbgp"):
        continue
    peer = WHO.get(key[2], "?")
    msgs = split(reassemble(st))
    rev = streams.get((key[2], key[3], key[0], key[1]))
    rmsgs = split(reassemble(rev)) if rev else []
    my_open = next((m for m in msgs if m[18] == 1), None)
    their_open = next((m for m in rmsgs if m[18] == 1), None)
    tx_addpath = set()
    if my_open and their_open:
        mine, theirs = addpath(open_caps(my_open)), addpath(open_caps(their_open))
        tx_addpath = {f for f, sr in mine.items() if sr & 2 and theirs.get(f, 0) & 1}
    transport = "v6session" if ":" in key[0] else "v4session"
    for m in msgs:
        t = m[18]
        if t == 1:
            caps = open_caps(m)
            capn = sorted({CAP.get(c, f"cap{c}") for c, _ in caps} - {"mp"})
            fams = [FAM.get(struct.unpack(">HxB", v)[::1], "") for c, v in caps if c == 1 and len(v) == 4]
            desc = "_".join([transport, "to", peer] + [f for f in fams if f])
            shape = ("open", who, transport, peer, tuple(capn), tuple(fams))
        elif t == 2:
            desc, ushape = update_shape(m, tx_addpath)
            shape = ("update", who) + ushape
        elif t == 3:
            code, sub = m[19], m[20]
            desc = CEASE.get(sub, f"cease{sub}") if code == 6 else f"code{code}_{sub}"
            if code == 6 and len(m) > 21:
                desc += "_with_message"
            shape = ("notification", who, code, sub, len(m) > 21)
        elif t == 4:
            continue  # every KEEPALIVE is the same 19 bytes (seed `keepalive`)
        elif t == 5:
            afi, sub, safi = struct.unpack(">HBB", m[19:23])
            desc = {0: "", 1: "borr_", 2: "eorr_"}.get(sub, f"sub{sub}_") + FAM.get((afi, safi), f"afi{afi}")
            shape = ("route_refresh", who, sub, afi, safi)
        else:
            continue
        typ = {1: "open", 2: "update", 3: "notification", 5: "route_refresh"}[t]
        # of messages of one shape, keep the one with the most attributes (then longest)
        old = shapes.get(shape)
        if old is None or len(desc) > len(old[0]) - len(f"{who}_{typ}_") or \
                (len(desc) == len(old[0]) - len(f"{who}_{typ}_") and len(m) > len(old[1])):
            shapes[shape] = (f"{who}_{typ}_{desc}", m)

existing = {}
for n in os.listdir(seeds_dir):
    with open(os.path.join(seeds_dir, n), "rb") as f:
        existing[hashlib.sha256(f.read()).hexdigest()] = n
written = []
for shape, (name, m) in sorted(shapes.items(), key=lambda s: s[1][0]):
    h = hashlib.sha256(m).hexdigest()
    if h in existing:
        print(f"  same bytes as seed {existing[h]}: {name}")
        continue
    base, i = name, 2
    while any(w == name for w, _ in written):
        name, i = f"{base}_{i}", i + 1
    existing[h] = name
    written.append((name, len(m)))
    if not dry:  # a seed of the same name from an earlier capture is replaced
        with open(os.path.join(seeds_dir, name), "wb") as f:
            f.write(m)
for name, n in written:
    print(f"  {'would write' if dry else 'wrote'} {name} ({n} bytes)")
print(f"{len(written)} seeds from {len(order)} TCP directions")
PY
}

install_deps
build
topology
capture
sessions
for ns in "$NF" "$NG"; do ip netns pids "$ns" | xargs -r ps -o pid=,comm= -p | awk '$2 == "tcpdump" {print $1}' | xargs -r kill -INT; done
sleep 1
extract
