//! Kernel tests: each runs in a fresh network namespace on its own thread.
//! Only documentation prefixes are used; nothing is ever sent anywhere.
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;

use super::*;

fn ns_inode(path: &str) -> u64 {
    std::fs::metadata(path).expect("netns inode").ino()
}

/// True when this thread is in a network namespace of its own: different from the
/// process's main thread (never unshared) and from PID 1 when that is readable.
fn in_own_netns() -> bool {
    let me = ns_inode("/proc/thread-self/ns/net");
    let init_differs = std::fs::metadata("/proc/1/ns/net").map_or(true, |m| m.ino() != me);
    me != ns_inode("/proc/self/ns/net") && init_differs
}

/// Runs `f` on a current-thread runtime in a fresh network namespace (skipped when
/// not root). Panics if the namespace could not be left.
fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping kernel test: not root");
        return;
    }
    let t = std::thread::spawn(move || {
        // SAFETY: only affects this thread (the network namespace is per thread).
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        assert!(in_own_netns(), "still in the root network namespace");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

fn ip(args: &str) -> String {
    assert!(in_own_netns(), "refusing to run ip outside a test netns");
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ip_batch(lines: &str) {
    assert!(in_own_netns(), "refusing to run ip outside a test netns");
    let path = std::env::temp_dir().join(format!(
        "hostbgp-kernel-batch-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, lines).unwrap();
    let out = Command::new("ip")
        .args(["-batch", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "ip -batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge with a veth port (so it has carrier) and the given addresses (nodad).
fn bridge(name: &str, v4: &str, v6: &str) -> u32 {
    ip(&format!("link add {name} type bridge"));
    ip(&format!("link add {name}p0 type veth peer name {name}p1"));
    ip(&format!("link set {name}p0 master {name}"));
    ip(&format!("link set {name}p0 up"));
    ip(&format!("link set {name}p1 up"));
    ip(&format!("link set {name} up"));
    ip(&format!("addr add {v4} dev {name}"));
    ip(&format!("addr add {v6} dev {name} nodad"));
    ifindex(name)
}

fn ifindex(name: &str) -> u32 {
    // Not /sys/class/net: sysfs shows the namespace it was mounted in.
    ip(&format!("-o link show dev {name}"))
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn wait_event(rx: &mut KernelEvents, what: &str, want: KernelEvent) -> KernelEvent {
    wait_for(rx, what, |e| *e == want).await
}

/// Waits for `cidr` to be added and hands over the address as the event gave it.
async fn address_added(rx: &mut KernelEvents, what: &str, cidr: &str) -> Address {
    match wait_for(
        rx,
        what,
        |e| matches!(e, KernelEvent::AddressAdded(a) if a.net == net(cidr)),
    )
    .await
    {
        KernelEvent::AddressAdded(a) => a,
        _ => unreachable!(),
    }
}

async fn wait_for(
    rx: &mut KernelEvents,
    what: &str,
    mut pred: impl FnMut(&KernelEvent) -> bool,
) -> KernelEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = rx.recv().await.expect("event channel closed");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Everything that arrives within `d`.
async fn drain(rx: &mut KernelEvents, d: Duration) -> Vec<KernelEvent> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(d, async {
        while let Some(ev) = rx.recv().await {
            out.push(ev);
        }
    })
    .await;
    out
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn hop(ifindex: u32, gw: Option<&str>) -> RouteNextHop {
    RouteNextHop {
        ifindex,
        gateway: gw.map(|g| g.parse().unwrap()),
    }
}

fn route(prefix: &str, mut hops: Vec<RouteNextHop>) -> Route {
    hops.sort();
    Route {
        prefix: net(prefix),
        next_hops: hops,
    }
}

/// Our routes as `ip -j route show proto 201` sees them: (dst, number of next hops).
fn ip_routes(family: &str) -> Vec<(String, usize)> {
    let out = ip(&format!("{family} -j route show proto 201"));
    let mut v = Vec::new();
    // Minimal JSON scan: each route object has "dst":"..." and maybe "nexthops":[...].
    for obj in out.split("{\"dst\":\"").skip(1) {
        let dst = obj.split('"').next().unwrap().to_string();
        let hops = match obj.find("\"nexthops\":[") {
            Some(i) => {
                // Each nexthop object has its own "dev" (flags arrays too, so no
                // bracket matching).
                obj[i..].matches("\"dev\"").count()
            }
            None => 1,
        };
        v.push((dst, hops));
    }
    v
}

#[test]
fn dump_sees_bridge_with_addresses() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, _rx) = Kernel::connect().await.unwrap();
        let v = k.dump().await.unwrap();
        let l = v.link_by_name("br0").unwrap();
        assert_eq!(l.index, br);
        assert!(l.admin_up);
        assert_eq!(l.master, None);
        let port = v.link_by_name("br0p0").unwrap();
        assert_eq!(port.master, Some(br));
        let addrs = v.addresses_of(br);
        assert!(addrs
            .iter()
            .any(|a| a.net == net("192.0.2.1/24") && !a.tentative));
        assert!(addrs
            .iter()
            .any(|a| a.net == net("2001:db8:1::1/64") && !a.tentative));
        assert!(addrs
            .iter()
            .all(|a| a.link_scope == a.net.addr().to_string().starts_with("fe80")));
        assert!(v.routes.is_empty());
    });
}

#[test]
fn address_events() {
    in_netns(|| async {
        let (_k, mut rx) = Kernel::connect().await.unwrap();
        ip("link add br0 type bridge");
        let br = ifindex("br0");
        let ev = wait_for(
            &mut rx,
            "br0",
            |e| matches!(e, KernelEvent::LinkChanged(l) if l.index == br),
        )
        .await;
        assert!(matches!(ev, KernelEvent::LinkChanged(l) if l.name == "br0" && !l.admin_up));
        ip("link set br0 up");
        ip("addr add 198.51.100.1/24 dev br0");
        let a4 = Address {
            ifindex: br,
            net: net("198.51.100.1/24"),
            tentative: false,
            link_scope: false,
        };
        wait_event(&mut rx, "v4 addr", KernelEvent::AddressAdded(a4.clone())).await;
        ip("addr add 2001:db8:2::1/64 dev br0 nodad");
        let a = address_added(&mut rx, "v6 nodad", "2001:db8:2::1/64").await;
        assert!(!a.tentative, "{a:?}");
        // Without nodad (and without carrier, so DAD cannot finish) it is tentative.
        ip("addr add 2001:db8:3::1/64 dev br0");
        let a = address_added(&mut rx, "v6 tentative", "2001:db8:3::1/64").await;
        assert!(a.tentative, "{a:?}");
        // With carrier, DAD runs: tentative first, then the final address.
        let b1 = bridge("br1", "203.0.113.1/24", "2001:db8:5::1/64");
        ip("addr add 2001:db8:6::1/64 dev br1");
        let a = address_added(&mut rx, "dad tentative", "2001:db8:6::1/64").await;
        assert!(a.tentative && a.ifindex == b1, "{a:?}");
        wait_for(&mut rx, "dad final", |e| {
            matches!(e, KernelEvent::AddressAdded(a) if a.net == net("2001:db8:6::1/64") && !a.tentative)
        })
        .await;
        ip("addr del 198.51.100.1/24 dev br0");
        wait_event(&mut rx, "v4 del", KernelEvent::AddressRemoved(a4.clone())).await;
        ip("addr del 2001:db8:2::1/64 dev br0");
        wait_for(
            &mut rx,
            "v6 del",
            |e| matches!(e, KernelEvent::AddressRemoved(a) if a.net == net("2001:db8:2::1/64")),
        )
        .await;
    });
}

#[test]
fn veth_enslaved_released_deleted() {
    in_netns(|| async {
        let (_k, mut rx) = Kernel::connect().await.unwrap();
        ip("link add br0 type bridge");
        ip("link add v0 type veth peer name v1");
        let br = ifindex("br0");
        let v0 = ifindex("v0");
        let is_v0 = |m: Option<u32>| move |e: &KernelEvent| matches!(e, KernelEvent::LinkChanged(l) if l.index == v0 && l.master == m);
        ip("link set v0 master br0");
        wait_for(&mut rx, "enslaved", is_v0(Some(br))).await;
        ip("link set v0 nomaster");
        wait_for(&mut rx, "released", is_v0(None)).await;
        ip("link del v0");
        wait_event(&mut rx, "deleted", KernelEvent::LinkRemoved(v0)).await;
        // Nothing after the deletion resurrects v0 (AF_BRIDGE duplicates ignored).
        let rest = drain(&mut rx, Duration::from_millis(300)).await;
        assert!(
            !rest
                .iter()
                .any(|e| matches!(e, KernelEvent::LinkChanged(l) if l.index == v0)),
            "{rest:?}"
        );
    });
}

#[test]
fn events_mirror_dump() {
    in_netns(|| async {
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let mut view = k.dump().await.unwrap();
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        ip("link add v0 type veth peer name v1");
        ip("link set v0 master br0");
        ip("link set v0 up");
        ip("link set v0 nomaster");
        ip("link set v1 master br0");
        ip("link del br0p0");
        k.install_route(&route("203.0.113.0/24", vec![hop(br, Some("192.0.2.2"))]))
            .await
            .unwrap();
        k.install_route(&route("2001:db8:99::/64", vec![hop(br, None)]))
            .await
            .unwrap();
        ip("addr add 198.51.100.1/24 dev br0");
        ip("addr del 198.51.100.1/24 dev br0");
        for ev in drain(&mut rx, Duration::from_millis(500)).await {
            assert_ne!(ev, KernelEvent::Overrun);
            view.apply(&ev);
        }
        let now = k.dump().await.unwrap();
        assert_eq!(view.links, now.links);
        assert_eq!(view.routes, now.routes);
        // Addresses: compare the non-tentative global ones (DAD may still be running
        // for link-local addresses of fresh links).
        let global = |v: &KernelView| {
            v.addresses
                .values()
                .flatten()
                .filter(|a| !a.link_scope)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(global(&view), global(&now));
    });
}

#[test]
fn install_replace_remove_single() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let routes = vec![
            route("203.0.113.0/24", vec![hop(br, Some("192.0.2.2"))]),
            route("203.0.113.7/32", vec![hop(br, None)]),
            route("2001:db8:99::/64", vec![hop(br, Some("2001:db8:1::2"))]),
            route("2001:db8:98::/64", vec![hop(br, None)]),
        ];
        for r in &routes {
            k.install_route(r).await.unwrap();
            // Idempotent.
            k.install_route(r).await.unwrap();
            wait_event(&mut rx, "route event", KernelEvent::RouteChanged(r.clone())).await;
        }
        let v = k.dump().await.unwrap();
        assert_eq!(v.routes.values().cloned().collect::<Vec<_>>(), {
            let mut s = routes.clone();
            s.sort_by_key(|r| r.prefix);
            s
        });
        let mut v4 = ip_routes("-4");
        v4.sort();
        assert_eq!(
            v4,
            vec![("203.0.113.0/24".into(), 1), ("203.0.113.7".into(), 1)]
        );
        assert!(ip("-4 route show 203.0.113.7/32").contains("scope link"));
        let mut v6 = ip_routes("-6");
        v6.sort();
        assert_eq!(
            v6,
            vec![
                ("2001:db8:98::/64".into(), 1),
                ("2001:db8:99::/64".into(), 1)
            ]
        );

        // Replace the gateways.
        let r4 = route("203.0.113.0/24", vec![hop(br, Some("192.0.2.3"))]);
        let r6 = route("2001:db8:99::/64", vec![hop(br, Some("2001:db8:1::3"))]);
        k.install_route(&r4).await.unwrap();
        k.install_route(&r6).await.unwrap();
        wait_event(
            &mut rx,
            "v4 replaced",
            KernelEvent::RouteChanged(r4.clone()),
        )
        .await;
        wait_event(
            &mut rx,
            "v6 replaced",
            KernelEvent::RouteChanged(r6.clone()),
        )
        .await;
        let v = k.dump().await.unwrap();
        assert_eq!(v.routes[&r4.prefix], r4);
        assert_eq!(v.routes[&r6.prefix], r6);
        assert!(ip("-4 route show proto 201").contains("via 192.0.2.3"));
        assert!(!ip("-4 route show proto 201").contains("via 192.0.2.2"));
        assert!(ip("-6 route show proto 201").contains("via 2001:db8:1::3"));
        assert!(!ip("-6 route show proto 201").contains("via 2001:db8:1::2"));

        for r in &routes {
            k.remove_route(&r.prefix).await.unwrap();
            wait_event(&mut rx, "removed", KernelEvent::RouteRemoved(r.prefix)).await;
            // Already gone: not an error.
            k.remove_route(&r.prefix).await.unwrap();
        }
        assert!(k.dump().await.unwrap().routes.is_empty());
        assert!(ip_routes("-4").is_empty() && ip_routes("-6").is_empty());

        // Errors name the prefix and the errno.
        let bad = route("203.0.113.64/26", vec![hop(br, Some("198.51.100.1"))]);
        let e = k.install_route(&bad).await.unwrap_err();
        assert!(
            e.to_string().contains("203.0.113.64/26") && e.to_string().contains("os error 101"),
            "{e}"
        );
    });
}

#[test]
fn multipath_install_and_shrink() {
    in_netns(|| async {
        let b0 = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let b1 = bridge("br1", "198.51.100.1/24", "2001:db8:2::1/64");
        let (k, mut rx) = Kernel::connect().await.unwrap();
        // Three hops (two via br0), then two, one, and two again.
        let sets = |g0: &str, g1: &str, g0b: &str| {
            let (x, y, z) = (hop(b0, Some(g0)), hop(b1, Some(g1)), hop(b0, Some(g0b)));
            let two = vec![x.clone(), y.clone()];
            vec![vec![x, y.clone(), z], two.clone(), vec![y], two]
        };
        let steps = [
            (
                "203.0.113.0/24",
                sets("192.0.2.2", "198.51.100.2", "192.0.2.3"),
            ),
            (
                "2001:db8:99::/64",
                sets("2001:db8:1::2", "2001:db8:2::2", "2001:db8:1::3"),
            ),
        ];
        for (prefix, sets) in steps {
            let family = if prefix.contains(':') { "-6" } else { "-4" };
            for hops in sets {
                let r = route(prefix, hops);
                k.install_route(&r).await.unwrap();
                wait_event(&mut rx, "mp event", KernelEvent::RouteChanged(r.clone())).await;
                let v = k.dump().await.unwrap();
                assert_eq!(v.routes.get(&r.prefix), Some(&r), "{prefix}");
                assert_eq!(
                    ip_routes(family),
                    vec![(prefix.to_string(), r.next_hops.len())]
                );
            }
            k.remove_route(&net(prefix)).await.unwrap();
            let ev = wait_for(&mut rx, "mp removed", |e| {
                matches!(
                    e,
                    KernelEvent::RouteRemoved(_) | KernelEvent::RouteChanged(_)
                )
            })
            .await;
            assert_eq!(ev, KernelEvent::RouteRemoved(net(prefix)));
            assert!(ip_routes(family).is_empty());
        }
        assert!(k.dump().await.unwrap().routes.is_empty());
    });
}

#[test]
fn foreign_routes_never_deleted() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, _rx) = Kernel::connect().await.unwrap();
        ip("route add 203.0.113.0/24 via 192.0.2.9 proto static metric 50");
        ip("route add 203.0.113.0/24 via 192.0.2.9 proto static table 100");
        ip("-6 route add 2001:db8:99::/64 via 2001:db8:1::9 proto static metric 50");
        ip("-6 route add 2001:db8:99::/64 via 2001:db8:1::9 proto static table 100");
        // Removing when only foreign routes exist: Ok, and they stay.
        k.remove_route(&net("203.0.113.0/24")).await.unwrap();
        k.remove_route(&net("2001:db8:99::/64")).await.unwrap();
        k.install_route(&route("203.0.113.0/24", vec![hop(br, Some("192.0.2.2"))]))
            .await
            .unwrap();
        k.install_route(&route(
            "2001:db8:99::/64",
            vec![hop(br, Some("2001:db8:1::2"))],
        ))
        .await
        .unwrap();
        // The dump sees only ours.
        assert_eq!(k.dump().await.unwrap().routes.len(), 2);
        k.remove_route(&net("203.0.113.0/24")).await.unwrap();
        k.remove_route(&net("2001:db8:99::/64")).await.unwrap();
        k.remove_route(&net("203.0.113.0/24")).await.unwrap();
        k.remove_route(&net("2001:db8:99::/64")).await.unwrap();
        let all4 = ip("-4 route show table all 203.0.113.0/24");
        let all6 = ip("-6 route show table all 2001:db8:99::/64");
        assert_eq!(all4.matches("proto static").count(), 2, "{all4}");
        assert_eq!(all6.matches("proto static").count(), 2, "{all6}");
        assert!(!all4.contains("201") && !all6.contains("201"));
        assert!(k.dump().await.unwrap().routes.is_empty());
    });
}

/// Known kernel behaviour: IPv4 routes through a link that goes down are flushed
/// WITHOUT an RTM_DELROUTE; the LinkChanged event is what tells the agent.
#[test]
fn link_down_flushes_ipv4_silently() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let r4 = route("203.0.113.0/24", vec![hop(br, Some("192.0.2.2"))]);
        let r6 = route("2001:db8:99::/64", vec![hop(br, Some("2001:db8:1::2"))]);
        k.install_route(&r4).await.unwrap();
        k.install_route(&r6).await.unwrap();
        wait_event(&mut rx, "r6", KernelEvent::RouteChanged(r6.clone())).await;
        ip("link set br0 down");
        wait_for(&mut rx, "br0 down", |e| {
            matches!(e, KernelEvent::LinkChanged(l) if l.index == br && !l.admin_up && !l.oper_up)
        })
        .await;
        let rest = drain(&mut rx, Duration::from_millis(500)).await;
        assert!(
            !rest.contains(&KernelEvent::RouteRemoved(r4.prefix)),
            "{rest:?}"
        );
        let v = k.dump().await.unwrap();
        assert!(
            !v.routes.contains_key(&r4.prefix),
            "IPv4 route should be flushed"
        );
        // IPv6: the kernel removes the route on admin down and says so (DELROUTE).
        let v6_gone = !v.routes.contains_key(&r6.prefix);
        assert_eq!(
            v6_gone,
            rest.contains(&KernelEvent::RouteRemoved(r6.prefix)),
            "{rest:?}"
        );
        eprintln!("link down: IPv6 route removed={v6_gone}, events after LinkChanged: {rest:?}");
    });
}

fn foreign_flood(n: usize, own_every: usize) -> (String, Vec<IpNet>) {
    let mut s = String::new();
    let mut own = Vec::new();
    for i in 0..n {
        s.push_str(&format!(
            "route add 2001:db8:100::{:x}/128 dev br0 proto static\n",
            i + 1
        ));
        if own_every > 0 && i % own_every == 0 {
            let p = format!("2001:db8:200::{:x}/128", i + 1);
            s.push_str(&format!("route add {p} dev br0 proto 201\n"));
            own.push(net(&p));
        }
    }
    (s, own)
}

#[test]
fn overrun_reported_with_tiny_buffer() {
    in_netns(|| async {
        bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (_k, mut rx) = Kernel::connect_with_watch_rcvbuf(1, false).await.unwrap();
        let (batch, _) = foreign_flood(20_000, 0);
        ip_batch(&batch);
        wait_event(&mut rx, "Overrun", KernelEvent::Overrun).await;
    });
}

#[test]
fn flood_loses_no_own_event_or_reports_overrun() {
    in_netns(|| async {
        bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (_k, mut rx) = Kernel::connect().await.unwrap();
        let (batch, own) = foreign_flood(20_000, 100);
        ip_batch(&batch);
        let mut missing: std::collections::BTreeSet<IpNet> = own.into_iter().collect();
        let mut overrun = false;
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    KernelEvent::RouteChanged(r) => {
                        missing.remove(&r.prefix);
                    }
                    KernelEvent::Overrun => overrun = true,
                    _ => {}
                }
                if missing.is_empty() {
                    break;
                }
            }
        })
        .await;
        assert!(
            missing.is_empty() || overrun,
            "lost {} own events without Overrun",
            missing.len()
        );
        assert!(!overrun, "32 MiB buffer should hold a 20k-route flood");
    });
}

#[test]
fn pipelined_batch_install_and_remove() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, _rx) = Kernel::connect().await.unwrap();
        let routes: Vec<Route> = (0..2000u32)
            .map(|i| {
                route(
                    &format!("2001:db8:300::{:x}/128", i + 1),
                    vec![hop(br, Some("2001:db8:1::2"))],
                )
            })
            .chain((0..=255u32).map(|i| route(&format!("203.0.113.{i}/32"), vec![hop(br, None)])))
            .collect();
        let t = std::time::Instant::now();
        k.install_routes(&routes).await.unwrap();
        eprintln!("installed {} routes in {:?}", routes.len(), t.elapsed());
        assert_eq!(k.dump().await.unwrap().routes.len(), routes.len());
        let prefixes: Vec<IpNet> = routes.iter().map(|r| r.prefix).collect();
        k.remove_routes(&prefixes).await.unwrap();
        assert!(k.dump().await.unwrap().routes.is_empty());
        // A failing batch names the count and an example.
        let bad = vec![route("203.0.113.0/24", vec![hop(br, Some("198.51.100.1"))])];
        let e = k.install_routes(&bad).await.unwrap_err();
        assert!(e.to_string().contains("1 of 1"), "{e}");
        let e = k.install_routes_unbatched(&bad).await.unwrap_err();
        assert!(e.to_string().contains("1 of 1"), "{e}");
        // Failures in the middle of a big batch: counted, the rest installed.
        let mut mixed = routes.clone();
        mixed.insert(
            700,
            route("203.0.113.0/24", vec![hop(br, Some("198.51.100.1"))]),
        );
        mixed.push(route(
            "2001:db8:301::/64",
            vec![hop(br, Some("2001:db8:2::1"))],
        ));
        let e = k.install_routes(&mixed).await.unwrap_err();
        assert!(
            e.to_string().contains(&format!("2 of {}", mixed.len())),
            "{e}"
        );
        assert!(e.to_string().contains("os error"), "{e}");
        assert_eq!(k.dump().await.unwrap().routes.len(), routes.len());
        k.install_routes_unbatched(&routes).await.unwrap();
        k.remove_routes(&prefixes).await.unwrap();
        // Removing again: already gone is fine.
        k.remove_routes(&prefixes).await.unwrap();
        assert!(k.dump().await.unwrap().routes.is_empty());
    });
}

/// Benchmark (ignored by default): `cargo test --release --lib kernel::tests::bench
/// -- --ignored --nocapture`; HOSTBGP_BENCH_N routes (default 100000) installed and
/// removed by us, then the same count installed by `ip -batch`.
#[test]
#[ignore]
fn bench_install_vs_ip_batch() {
    in_netns(|| async {
        let n: u32 = std::env::var("HOSTBGP_BENCH_N")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000);
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let routes: Vec<Route> = (0..n)
            .map(|i| {
                route(
                    &format!("2001:db8:4::{:x}:{:x}/128", i >> 16, i & 0xffff),
                    vec![hop(br, Some("2001:db8:1::2"))],
                )
            })
            .collect();
        let t = std::time::Instant::now();
        k.install_routes(&routes).await.unwrap();
        let ours = t.elapsed();
        let t = std::time::Instant::now();
        assert_eq!(k.dump().await.unwrap().routes.len(), n as usize);
        let dump = t.elapsed();
        let prefixes: Vec<IpNet> = routes.iter().map(|r| r.prefix).collect();
        let t = std::time::Instant::now();
        k.remove_routes(&prefixes).await.unwrap();
        let removal = t.elapsed();
        let mut events = 0usize;
        let mut overrun = false;
        while let Ok(ev) = rx.try_recv() {
            events += 1;
            overrun |= ev == KernelEvent::Overrun;
        }
        let t = std::time::Instant::now();
        k.install_routes_unbatched(&routes).await.unwrap();
        let unbatched = t.elapsed();
        k.remove_routes(&prefixes).await.unwrap();
        while rx.try_recv().is_ok() {}
        let mut batch = String::new();
        for i in 0..n {
            batch.push_str(&format!(
                "route add 2001:db8:5::{:x}:{:x}/128 via 2001:db8:1::2 dev br0 proto 201\n",
                i >> 16,
                i & 0xffff
            ));
        }
        let t = std::time::Instant::now();
        ip_batch(&batch);
        let theirs = t.elapsed();
        eprintln!("n={n}: install_routes {ours:?}, unbatched {unbatched:?}, dump {dump:?}, remove_routes {removal:?}, ip -batch {theirs:?}; {events} events queued, overrun={overrun}");
    });
}

/// A nexthop device of a multipath route goes away: the events must leave the same
/// routes as a fresh dump (no false RouteRemoved for IPv6; IPv4 flushes silently).
#[test]
fn multipath_nexthop_device_deleted() {
    in_netns(|| async {
        let b0 = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let b1 = bridge("br1", "198.51.100.1/24", "2001:db8:2::1/64");
        let r6 = route(
            "2001:db8:99::/64",
            vec![
                hop(b0, Some("2001:db8:1::2")),
                hop(b1, Some("2001:db8:2::2")),
            ],
        );
        let r4 = route(
            "203.0.113.0/24",
            vec![hop(b0, Some("192.0.2.2")), hop(b1, Some("198.51.100.2"))],
        );
        // Installed before this connection exists, as after an agent restart: the
        // watch task learns the next hops from the dump.
        {
            let (k0, _rx0) = Kernel::connect().await.unwrap();
            k0.install_route(&r6).await.unwrap();
            k0.install_route(&r4).await.unwrap();
        }
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let mut view = k.dump().await.unwrap();
        assert_eq!(view.routes.len(), 2);
        ip("link del br1");
        let evs = drain(&mut rx, Duration::from_millis(500)).await;
        for ev in &evs {
            view.apply(ev);
        }
        let now = k.dump().await.unwrap();
        eprintln!(
            "after deleting a nexthop device: events {evs:?}; dump {:?}",
            now.routes
        );
        assert_eq!(
            view.routes.get(&r6.prefix),
            now.routes.get(&r6.prefix),
            "{evs:?}"
        );
        // The kernel sends RTM_DELROUTE for the dead nexthop only (6.18): that must
        // be a RouteChanged with the remaining hop, not a RouteRemoved.
        assert_eq!(
            now.routes.get(&r6.prefix),
            Some(&route(
                "2001:db8:99::/64",
                vec![hop(b0, Some("2001:db8:1::2"))]
            ))
        );
        assert!(
            !evs.contains(&KernelEvent::RouteRemoved(r6.prefix)),
            "{evs:?}"
        );
        // IPv4: the whole multipath route is flushed without any event (known).
        assert!(!now.routes.contains_key(&r4.prefix));
        assert!(!evs.iter().any(|e| matches!(e, KernelEvent::RouteRemoved(p) | KernelEvent::RouteChanged(Route { prefix: p, .. }) if *p == r4.prefix)));
    });
}

/// Route events only, without the link and address noise of a bridge coming up.
async fn route_events(rx: &mut KernelEvents) -> Vec<KernelEvent> {
    drain(rx, Duration::from_millis(300))
        .await
        .into_iter()
        .filter(|e| !e.is_interface_event())
        .collect()
}

/// Another program's `ip route replace` takes our route's slot without a
/// RTM_DELROUTE for ours; its changes to our own route are told from our echoes by
/// the sender's port id; routes beside ours are reported, others' prefixes are not.
#[test]
fn foreign_changes_to_our_prefixes_are_reported() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let v4 = route("203.0.113.64/28", vec![hop(br, None)]);
        let v6 = route("2001:db8:99::/64", vec![hop(br, None)]);
        k.install_route(&v4).await.unwrap();
        k.install_route(&v6).await.unwrap();
        drain(&mut rx, Duration::from_millis(300)).await;
        let foreign = |p: &str, protocol, metric, change| {
            KernelEvent::Foreign(ForeignRoute {
                prefix: net(p),
                protocol,
                metric,
                change,
            })
        };

        ip("route replace 203.0.113.64/28 dev br0 proto static");
        ip("-6 route replace 2001:db8:99::/64 dev br0 proto static");
        assert_eq!(
            route_events(&mut rx).await,
            vec![
                KernelEvent::RouteRemoved(v4.prefix),
                foreign("203.0.113.64/28", 4, 0, ForeignChange::Replaced),
                KernelEvent::RouteRemoved(v6.prefix),
                foreign("2001:db8:99::/64", 4, 1024, ForeignChange::Replaced),
            ]
        );
        // Theirs going now concerns nobody: ours had gone already.
        ip("route del 203.0.113.64/28 proto static");
        assert_eq!(route_events(&mut rx).await, vec![]);

        // Ours back by our own request: an echo, nothing else.
        k.install_route(&v4).await.unwrap();
        k.install_route(&v6).await.unwrap();
        assert_eq!(
            route_events(&mut rx).await,
            vec![
                KernelEvent::RouteChanged(v4.clone()),
                KernelEvent::RouteChanged(v6.clone())
            ]
        );
        // Someone else changes our own route's gateway.
        ip("route replace 203.0.113.64/28 via 192.0.2.9 dev br0 proto 201");
        assert_eq!(
            route_events(&mut rx).await,
            vec![
                KernelEvent::RouteChanged(route(
                    "203.0.113.64/28",
                    vec![hop(br, Some("192.0.2.9"))]
                )),
                foreign("203.0.113.64/28", 201, 0, ForeignChange::Tampered),
            ]
        );
        // A better metric beside ours, then removed by the agent's request.
        ip("-6 route add 2001:db8:99::/64 dev br0 proto boot metric 100");
        let events = route_events(&mut rx).await;
        assert_eq!(
            events,
            vec![foreign("2001:db8:99::/64", 3, 100, ForeignChange::Added)]
        );
        k.remove_foreign_route(&v6.prefix, 3, 100).await.unwrap();
        assert_eq!(
            route_events(&mut rx).await,
            vec![foreign("2001:db8:99::/64", 3, 100, ForeignChange::Removed)]
        );
        let left = ip("-6 route show 2001:db8:99::/64");
        assert!(
            !left.contains("metric 100") && left.contains("proto 201"),
            "{left}"
        );
        // Prefixes we hold no route for, and other tables, are not reported.
        ip("route add 203.0.113.80/28 dev br0 proto static");
        ip("route add 203.0.113.64/28 dev br0 proto static table 100");
        assert_eq!(route_events(&mut rx).await, vec![]);
        // A check against what we believed finds the changed gateway alone.
        let mut said = Routes::default();
        said.insert(v4.clone());
        said.insert(v6.clone());
        assert_eq!(
            k.route_drift(&said).await.unwrap(),
            vec![(
                v4.prefix,
                Some(route("203.0.113.64/28", vec![hop(br, Some("192.0.2.9"))]))
            )]
        );
    });
}

#[test]
fn neighbour_events_and_dump() {
    in_netns(|| async {
        let br = bridge("br0", "192.0.2.1/24", "2001:db8:1::1/64");
        ip("neigh add 192.0.2.10 lladdr 00:16:3e:00:00:01 dev br0 nud stale");
        let (k, mut rx) = Kernel::connect().await.unwrap();
        let mac = Mac([0, 0x16, 0x3e, 0, 0, 1]);
        let v4 = "192.0.2.10".parse().unwrap();
        let v6 = "2001:db8:1::10".parse().unwrap();
        // The dump holds the entry made before the watch started.
        let mut view = k.dump().await.unwrap();
        assert_eq!(view.neighbours.mac_of(br, &v4), Some(mac));
        ip("neigh add 2001:db8:1::10 lladdr 00:16:3e:00:00:01 dev br0 nud reachable");
        let seen = Neighbour {
            ifindex: br,
            ip: v6,
            mac,
        };
        wait_event(&mut rx, "v6 neighbour", KernelEvent::NeighbourSeen(seen)).await;
        // Link-local neighbours and the bridge's FDB entries never come through.
        ip("neigh add fe80::216:3eff:fe00:1 lladdr 00:16:3e:00:00:01 dev br0 nud stale");
        ip("neigh del 192.0.2.10 dev br0");
        wait_for(&mut rx, "v4 deleted", |e| {
            *e == KernelEvent::NeighbourGone {
                ifindex: br,
                ip: v4,
            }
        })
        .await;
        ip("neigh add 192.0.2.11 lladdr 00:16:3e:00:00:02 dev br0 nud permanent");
        ip("neigh change 192.0.2.11 dev br0 nud failed");
        let rest = drain(&mut rx, Duration::from_millis(300)).await;
        let neighbours: Vec<&KernelEvent> = rest
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    KernelEvent::NeighbourSeen(_) | KernelEvent::NeighbourGone { .. }
                )
            })
            .collect();
        assert!(
            !neighbours
                .iter()
                .any(|e| matches!(e, KernelEvent::NeighbourSeen(n) if n.ip.is_ipv6())),
            "{neighbours:?}"
        );
        assert!(
            matches!(neighbours.last(), Some(KernelEvent::NeighbourGone { ip, .. }) if ip.to_string() == "192.0.2.11"),
            "{neighbours:?}"
        );
        // Events applied to the dump end where a new dump is.
        for ev in &rest {
            view.apply(ev);
        }
        view.apply(&KernelEvent::NeighbourSeen(seen));
        view.apply(&KernelEvent::NeighbourGone {
            ifindex: br,
            ip: v4,
        });
        assert_eq!(view.neighbours, k.dump().await.unwrap().neighbours);
    });
}
