//! Issue 18 item 2: router discovery for unnumbered peers. The `nd` task runs in two
//! namespaces joined by a veth that has link-local addresses only; each must hear
//! the other's Router Advertisements and report its link-local address and MAC.
//!
//! The tasks run inside this test process: each in a thread that moved into its
//! namespace (`setns` affects the calling thread only) with a runtime of its own.
//! (FRR's side of this was checked by hand; see `src/nd/mod.rs`.)

use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::time::Duration;

use hostbgp::kernel::Mac;
use hostbgp::nd::{self, Config, Heard};
use serde_json::Value;

use crate::lab::{self, Lab};

/// The interface as the task needs it: index, MAC, link-local address.
struct Iface {
    name: String,
    index: u32,
    mac: Mac,
    ll: Ipv6Addr,
}

fn iface(l: &Lab, ns: &str, dev: &str) -> Iface {
    let link: Value =
        serde_json::from_str(&l.ip(ns, &["-j", "link", "show", "dev", dev])).expect("ip -j link");
    let addrs: Value = serde_json::from_str(&l.ip(
        ns,
        &["-j", "-6", "addr", "show", "dev", dev, "scope", "link"],
    ))
    .expect("ip -j addr");
    let ll = addrs[0]["addr_info"][0]["local"]
        .as_str()
        .unwrap_or_else(|| panic!("no link-local on {dev} in {ns}: {addrs}"));
    Iface {
        name: dev.into(),
        index: u32::try_from(link[0]["ifindex"].as_u64().expect("ifindex")).expect("index"),
        mac: Mac::from_str(link[0]["address"].as_str().expect("address")).expect("mac"),
        ll: ll.parse().expect("link-local"),
    }
}

/// A namespace and its interface.
type End = (String, Iface);

/// The lab with namespaces a and b joined by a veth, nda0 in a, ndb0 in b: (lab,
/// (a, nda0), (b, ndb0)); None (the test skipped) without root.
fn veth_pair(test: &str) -> Option<(Lab, End, End)> {
    if !lab::require_root(test) {
        return None;
    }
    let l = Lab::new();
    let (a, b) = (l.ns("a"), l.ns("b"));
    l.veth((&a, "nda0"), (&b, "ndb0"));
    let (ia, ib) = (iface(&l, &a, "nda0"), iface(&l, &b, "ndb0"));
    Some((l, (a, ia), (b, ib)))
}

/// Runs the task for `iface` in namespace `ns` until it has reported `count` RAs
/// from `expect`, or `timeout`, then one more second; returns the reports.
fn run_in_ns(
    ns: String,
    iface: Iface,
    interval: Duration,
    (expect, count): (Ipv6Addr, usize),
    timeout: Duration,
) -> std::thread::JoinHandle<Vec<Heard>> {
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        // SAFETY: plain syscall on a valid descriptor; it moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let config = Config {
                ifname: iface.name.clone(),
                ifindex: iface.index,
                source: Some(iface.ll),
                mac: Some(iface.mac),
                interval,
            };
            let _task = nd::spawn(config, tx).expect("nd socket");
            let mut heard = Vec::new();
            let deadline = tokio::time::Instant::now() + timeout;
            while let Ok(Some(h)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                heard.push(h);
                if heard.iter().filter(|h| h.router == expect).count() >= count {
                    break;
                }
            }
            // Stay up a little: the other side may be waiting for our reply.
            let linger = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some(h)) = tokio::time::timeout_at(linger, rx.recv()).await {
                heard.push(h);
            }
            heard
        })
    })
}

#[test]
fn nd_tasks_learn_each_others_link_local() {
    let Some((l, (a, ia), (b, ib))) = veth_pair("nd_tasks_learn_each_others_link_local") else {
        return;
    };
    // A second link-local on b, listed first: b's RAs must still come from the
    // configured one.
    l.addr(&b, "ndb0", "fe80::b2/64");
    let (ll_a, mac_a, idx_a) = (ia.ll, ia.mac, ia.index);
    let (ll_b, mac_b, idx_b) = (ib.ll, ib.mac, ib.index);
    // A long period: each learns the other from the replies to a new router's RA
    // and to the RS sent at start, not from the timer. b starts after a's first RA
    // has gone unheard.
    let interval = Duration::from_secs(60);
    let wait = Duration::from_secs(10);
    let ta = run_in_ns(a.clone(), ia, interval, (ll_b, 1), wait);
    std::thread::sleep(Duration::from_millis(500));
    let tb = run_in_ns(b.clone(), ib, interval, (ll_a, 1), wait);
    let (heard_a, heard_b) = (ta.join().expect("a"), tb.join().expect("b"));

    let from_b = heard_a.iter().find(|h| h.router == ll_b);
    assert_eq!(
        from_b.copied(),
        Some(Heard {
            ifindex: idx_a,
            router: ll_b,
            router_lifetime: 0,
            mac: Some(mac_b),
        }),
        "a heard {heard_a:?}"
    );
    let from_a = heard_b.iter().find(|h| h.router == ll_a);
    assert_eq!(
        from_a.copied(),
        Some(Heard {
            ifindex: idx_b,
            router: ll_a,
            router_lifetime: 0,
            mac: Some(mac_a),
        }),
        "b heard {heard_b:?}"
    );
    let b2: Ipv6Addr = "fe80::b2".parse().expect("addr");
    assert!(
        heard_a.iter().all(|h| h.router == ll_b && h.router != b2),
        "a heard only b's configured link-local: {heard_a:?}"
    );
}

#[test]
fn nd_periodic_advertisements_keep_coming() {
    let Some((_lab, (a, ia), (b, ib))) = veth_pair("nd_periodic_advertisements_keep_coming") else {
        return;
    };
    let ll_a = ia.ll;
    // a advertises every second. b's start (its RS, its RA) earns one reply at
    // most (replies are 3 s apart), so 4 RAs from a within 4.5 s means the timer
    // keeps sending.
    let ta = run_in_ns(
        a.clone(),
        ia,
        Duration::from_secs(1),
        (Ipv6Addr::UNSPECIFIED, 1),
        Duration::from_secs(5),
    );
    let started = std::time::Instant::now();
    let tb = run_in_ns(
        b.clone(),
        ib,
        Duration::from_secs(60),
        (ll_a, 4),
        Duration::from_millis(4500),
    );
    let heard_b = tb.join().expect("b");
    let took = started.elapsed();
    let _ = ta.join().expect("a");
    let from_a = heard_b.iter().filter(|h| h.router == ll_a).count();
    assert!(
        from_a >= 4,
        "b heard {from_a} RAs from a in {took:?}: {heard_b:?}"
    );
}

/// Sends one RA from `src` on `dev` in namespace `ns` with hop limit `hops`, as a
/// router that is not hostbgp would (its own raw socket, its own hop limit).
fn send_ra(ns: &str, dev: &str, index: u32, src: Ipv6Addr, hops: i32) {
    use nix::sys::socket::{
        bind, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
        SockType, SockaddrIn6,
    };
    use std::net::SocketAddrV6;
    let (ns, dev) = (ns.to_string(), dev.to_string());
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        // SAFETY: plain syscall on a valid descriptor; it moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        let fd = socket(
            AddressFamily::Inet6,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::IcmpV6,
        )
        .expect("raw socket");
        setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(&dev))
            .expect("bind to device");
        setsockopt(&fd, sockopt::Ipv6MulticastHops, &hops).expect("hops");
        bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(SocketAddrV6::new(src, 0, 0, index)),
        )
        .expect("bind source");
        let ra =
            hostbgp::nd::wire::Repr::RouterAdvert(hostbgp::nd::wire::RouterAdvert::announce(None))
                .to_bytes();
        let to = SockaddrIn6::from(SocketAddrV6::new(
            "ff02::1".parse().expect("ff02::1"),
            0,
            0,
            index,
        ));
        sendto(fd.as_raw_fd(), &ra, &to, MsgFlags::empty()).expect("send RA");
    })
    .join()
    .expect("sender");
}

#[test]
fn nd_ignores_advertisements_with_hop_limit_below_255() {
    let Some((l, (a, ia), (b, ib))) =
        veth_pair("nd_ignores_advertisements_with_hop_limit_below_255")
    else {
        return;
    };
    l.addr(&b, "ndb0", "fe80::64/64");
    l.addr(&b, "ndb0", "fe80::255/64");
    let (off_link, on_link): (Ipv6Addr, Ipv6Addr) = (
        "fe80::64".parse().expect("a"),
        "fe80::255".parse().expect("a"),
    );
    let ta = run_in_ns(
        a.clone(),
        ia,
        Duration::from_secs(60),
        (on_link, 1),
        Duration::from_secs(5),
    );
    // Give a's socket time to open; its own start RA needs no answer here.
    std::thread::sleep(Duration::from_millis(500));
    // Hop limit 64: possibly forwarded from elsewhere (RFC 4861 6.1.2), dropped.
    send_ra(&b, "ndb0", ib.index, off_link, 64);
    send_ra(&b, "ndb0", ib.index, on_link, 255);
    let heard_a = ta.join().expect("a");
    assert!(
        heard_a.iter().any(|h| h.router == on_link),
        "the hop limit 255 RA was heard: {heard_a:?}"
    );
    assert!(
        heard_a.iter().all(|h| h.router != off_link),
        "the hop limit 64 RA was not: {heard_a:?}"
    );
}
