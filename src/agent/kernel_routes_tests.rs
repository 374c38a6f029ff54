//! The kernel core against a fake kernel: which requests it makes, what it records.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::*;
use crate::kernel::{Drift, Link, RouteNextHop, Routes};

/// A request the core made.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Install(IpNet),
    Remove(IpNet),
    InstallMany(usize),
    RemoveMany(usize),
    RemoveForeign(IpNet, u8, u32),
    Dump,
    Drift,
}

/// A kernel holding our routes in a map; installs of `refuse`d prefixes fail as the
/// kernel fails them (ENETUNREACH), single or batched.
#[derive(Default)]
struct FakeTable {
    routes: Mutex<Routes>,
    refuse: Mutex<BTreeSet<IpNet>>,
    calls: Mutex<Vec<Call>>,
}

impl FakeTable {
    fn call(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
    fn refused(&self, prefix: IpNet) -> Result<(), KernelError> {
        if self.refuse.lock().unwrap().contains(&prefix) {
            return Err(KernelError::Refused {
                what: format!("install route {prefix}"),
                errno: libc::ENETUNREACH,
            });
        }
        Ok(())
    }
    fn put(&self, route: &Route) -> Result<(), KernelError> {
        self.refused(route.prefix)?;
        self.routes.lock().unwrap().insert(route.clone());
        Ok(())
    }
}

impl RouteTable for Arc<FakeTable> {
    async fn dump(&self) -> Result<KernelView, KernelError> {
        self.call(Call::Dump);
        Ok(KernelView {
            routes: self.routes.lock().unwrap().clone(),
            ..KernelView::default()
        })
    }
    async fn route_drift(&self, said: &Routes) -> Result<Drift, KernelError> {
        self.call(Call::Drift);
        let holds = self.routes.lock().unwrap();
        let prefixes: BTreeSet<IpNet> = said.keys().chain(holds.keys()).copied().collect();
        Ok(prefixes
            .into_iter()
            .filter(|p| said.get(p) != holds.get(p))
            .map(|p| (p, holds.get(&p).cloned()))
            .collect())
    }
    async fn install_route(&self, route: &Route) -> Result<(), KernelError> {
        self.call(Call::Install(route.prefix));
        self.put(route)
    }
    async fn remove_route(&self, prefix: &IpNet) -> Result<(), KernelError> {
        self.call(Call::Remove(*prefix));
        self.routes.lock().unwrap().remove(prefix);
        Ok(())
    }
    async fn install_routes(&self, routes: &[Route]) -> Result<(), KernelError> {
        self.call(Call::InstallMany(routes.len()));
        let failed: Vec<KernelError> = routes.iter().filter_map(|r| self.put(r).err()).collect();
        match failed.into_iter().next() {
            None => Ok(()),
            Some(example) => Err(KernelError::Partial {
                op: "install".into(),
                failed: 1,
                total: routes.len(),
                example: Box::new(example),
            }),
        }
    }
    async fn remove_routes(&self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        self.call(Call::RemoveMany(prefixes.len()));
        let mut routes = self.routes.lock().unwrap();
        for p in prefixes {
            routes.remove(p);
        }
        Ok(())
    }
    async fn remove_foreign(&self, route: &ForeignRoute) -> Result<(), KernelError> {
        self.call(Call::RemoveForeign(
            route.prefix,
            route.protocol,
            route.metric,
        ));
        Ok(())
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn route(prefix: &str, ifindex: u32) -> Route {
    Route {
        prefix: net(prefix),
        next_hops: vec![RouteNextHop {
            ifindex,
            gateway: None,
        }],
    }
}

fn wanted(routes: &[Route]) -> Wanted {
    routes
        .iter()
        .map(|r| {
            let w = WantedRoute {
                route: r.clone(),
                owners: Arc::from(Vec::new()),
            };
            (r.prefix, w)
        })
        .collect()
}

/// A core over a kernel already holding `held`, as a start-up dump finds it.
async fn core_with(held: &[Route]) -> (KernelRoutes<Arc<FakeTable>>, Arc<FakeTable>) {
    let table = Arc::new(FakeTable::default());
    for r in held {
        table.put(r).unwrap();
    }
    let view = table.dump().await.unwrap();
    table.calls.lock().unwrap().clear();
    (KernelRoutes::new(table.clone(), view), table)
}

/// A core that has installed `routes` in an empty kernel, and what it wanted.
async fn core_after_installing(
    routes: &[Route],
) -> (KernelRoutes<Arc<FakeTable>>, Arc<FakeTable>, Wanted) {
    let (mut core, table) = core_with(&[]).await;
    let want = wanted(routes);
    core.reconcile(&want, None).await;
    calls(&table);
    (core, table, want)
}

fn calls(table: &FakeTable) -> Vec<Call> {
    std::mem::take(&mut *table.calls.lock().unwrap())
}

#[tokio::test]
async fn installs_what_is_wanted_and_removes_what_is_not() {
    let stale = route("203.0.113.9/32", 3);
    let (mut core, table) = core_with(std::slice::from_ref(&stale)).await;
    let want = wanted(&[route("203.0.113.10/32", 3), route("2001:db8::10/128", 3)]);
    let moved = core.reconcile(&want, None).await;
    assert_eq!(
        calls(&table),
        [
            Call::Remove(stale.prefix),
            Call::Install(net("203.0.113.10/32")),
            Call::Install(net("2001:db8::10/128")),
        ]
    );
    assert_eq!(moved.len(), 3, "each request moves its prefix: {moved:?}");
    assert_eq!(core.view.routes, *table.routes.lock().unwrap());
    // The view already holds what the requests did: the same intent asks for nothing.
    assert!(core.reconcile(&want, None).await.is_empty());
    assert_eq!(calls(&table), []);
}

#[tokio::test]
async fn adopts_a_route_found_at_start_that_is_already_right() {
    let right = route("203.0.113.10/32", 3);
    let (mut core, table) = core_with(&[right.clone(), route("203.0.113.11/32", 3)]).await;
    // The second one goes through another link now.
    let want = wanted(&[right, route("203.0.113.11/32", 4)]);
    core.reconcile(&want, None).await;
    assert_eq!(calls(&table), [Call::Install(net("203.0.113.11/32"))]);
}

#[tokio::test]
async fn a_route_the_kernel_reports_in_another_form_is_not_fought() {
    let (mut core, table, want) = core_after_installing(&[route("203.0.113.10/32", 3)]).await;
    // The kernel's event says it holds the route differently (say, with a gateway
    // filled in): once installed, our fingerprint says it was done.
    let mut reported = route("203.0.113.10/32", 3);
    reported.next_hops[0].gateway = Some("203.0.113.1".parse().unwrap());
    let absorbed = core
        .absorb(&[KernelEvent::RouteChanged(reported)], &want)
        .await;
    assert!(absorbed.view_changed);
    assert!(core
        .reconcile(&want, Some(&[net("203.0.113.10/32")]))
        .await
        .is_empty());
    assert_eq!(calls(&table), [], "no re-install of a route we installed");
}

#[tokio::test]
async fn a_refused_install_is_recorded_and_cleared_when_it_succeeds() {
    let (mut core, table) = core_with(&[]).await;
    let p = net("203.0.113.10/32");
    table.refuse.lock().unwrap().insert(p);
    let want = wanted(&[route("203.0.113.10/32", 3)]);
    assert!(core.reconcile(&want, None).await.is_empty());
    let error = core
        .errors
        .get(&p)
        .expect("the failure is kept for `routes`");
    assert!(error.contains("unreachable"), "{error}");
    table.refuse.lock().unwrap().clear();
    assert_eq!(core.reconcile(&want, None).await, [p]);
    assert!(core.errors.is_empty());
}

#[tokio::test]
async fn a_failed_batch_is_redone_one_by_one_to_learn_which_failed() {
    let (mut core, table) = core_with(&[]).await;
    let routes: Vec<Route> = (0..=SMALL_KERNEL_BATCH as u8)
        .map(|i| route(&format!("203.0.113.{i}/32"), 3))
        .collect();
    let bad = routes[5].prefix;
    table.refuse.lock().unwrap().insert(bad);
    let moved = core.reconcile(&wanted(&routes), None).await;
    let made = calls(&table);
    assert_eq!(made[0], Call::InstallMany(routes.len()));
    assert_eq!(made.len(), 1 + routes.len(), "then each singly: {made:?}");
    assert_eq!(moved.len(), routes.len() - 1);
    assert_eq!(core.errors.keys().collect::<Vec<_>>(), [&bad]);
    assert!(!core.view.routes.contains_key(&bad));
}

#[tokio::test]
async fn many_removals_go_in_one_batch() {
    let held: Vec<Route> = (0..=SMALL_KERNEL_BATCH as u8)
        .map(|i| route(&format!("203.0.113.{i}/32"), 3))
        .collect();
    let (mut core, table) = core_with(&held).await;
    core.reconcile(&Wanted::new(), None).await;
    assert_eq!(calls(&table), [Call::RemoveMany(held.len())]);
    assert!(core.view.routes.is_empty());
}

fn foreign(prefix: &str, change: ForeignChange, metric: u32) -> KernelEvent {
    KernelEvent::Foreign(ForeignRoute {
        prefix: net(prefix),
        protocol: 4, // static
        metric,
        change,
    })
}

#[tokio::test]
async fn a_route_that_replaced_ours_is_repaired() {
    let ours = route("203.0.113.10/32", 3);
    let (mut core, table, want) = core_after_installing(std::slice::from_ref(&ours)).await;
    let events = [
        KernelEvent::RouteRemoved(ours.prefix),
        foreign("203.0.113.10/32", ForeignChange::Replaced, 0),
    ];
    let absorbed = core.absorb(&events, &want).await;
    assert_eq!(absorbed.repair, [ours.prefix]);
    let displaced = &core.displaced[&ours.prefix];
    assert!(
        displaced.contains("a proto static route (metric 0) replaced ours"),
        "{displaced}"
    );
    assert_eq!(
        core.reconcile(&want, Some(&absorbed.repair)).await,
        [ours.prefix]
    );
    assert_eq!(calls(&table), [Call::Install(ours.prefix)]);
    // Once no longer wanted, the record of it goes too.
    core.reconcile(&Wanted::new(), None).await;
    assert!(core.displaced.is_empty());
}

#[tokio::test]
async fn a_route_that_shadows_ours_is_removed_and_others_are_left_alone() {
    let (mut core, table) = core_with(&[route("2001:db8::10/128", 3)]).await;
    let want = wanted(&[route("2001:db8::10/128", 3)]);
    // A lower metric than our 1024 wins in the kernel: removed.
    let absorbed = core
        .absorb(
            &[foreign("2001:db8::10/128", ForeignChange::Added, 100)],
            &want,
        )
        .await;
    assert!(absorbed.repair.is_empty());
    assert_eq!(
        calls(&table),
        [Call::RemoveForeign(net("2001:db8::10/128"), 4, 100)]
    );
    // A higher metric loses to ours; a prefix we don't want is none of our business.
    core.absorb(
        &[foreign("2001:db8::10/128", ForeignChange::Added, 2000)],
        &want,
    )
    .await;
    core.absorb(
        &[foreign("2001:db8::99/128", ForeignChange::Added, 1)],
        &want,
    )
    .await;
    assert_eq!(calls(&table), []);
}

fn address(ifindex: u32, net_: &str) -> Address {
    Address {
        ifindex,
        net: net(net_),
        tentative: false,
        link_scope: false,
    }
}

#[tokio::test]
async fn redumps_when_the_kernel_flushes_ipv4_routes_silently() {
    let (mut core, _) = core_with(&[route("203.0.113.10/32", 3)]).await;
    let want = Wanted::new();
    let link = |up| {
        KernelEvent::LinkChanged(Link {
            admin_up: up,
            ..Link::up(3, "br0", None)
        })
    };
    core.absorb(
        &[
            link(true),
            KernelEvent::AddressAdded(address(3, "192.0.2.1/24")),
            KernelEvent::AddressAdded(address(3, "198.51.100.1/24")),
        ],
        &want,
    )
    .await;
    // Not the last IPv4 address: the routes stay.
    let other = KernelEvent::AddressRemoved(address(3, "198.51.100.1/24"));
    assert!(!core.absorb(&[other], &want).await.redump);
    let last = KernelEvent::AddressRemoved(address(3, "192.0.2.1/24"));
    assert!(core.absorb(&[last], &want).await.redump);
    assert!(core.absorb(&[link(false)], &want).await.redump);
    assert!(
        core.absorb(&[KernelEvent::LinkRemoved(3)], &want)
            .await
            .redump
    );
    // A link none of our routes use needs no dump.
    assert!(
        !core
            .absorb(&[KernelEvent::LinkRemoved(7)], &want)
            .await
            .redump
    );
    assert!(core.absorb(&[KernelEvent::Overrun], &want).await.redump);
}

#[tokio::test]
async fn drift_found_by_the_check_is_taken_in_and_repaired() {
    let ours = route("203.0.113.10/32", 3);
    let (mut core, table, want) = core_after_installing(std::slice::from_ref(&ours)).await;
    assert_eq!(core.check("test").await.map(|t| t.routes), None);
    // The route went without an event.
    table.routes.lock().unwrap().remove(&ours.prefix);
    calls(&table);
    let touched = core.check("test").await.expect("drift");
    assert_eq!(touched.routes, [ours.prefix]);
    assert!(!core.view.routes.contains_key(&ours.prefix));
    assert_eq!(
        core.reconcile(&want, Some(&touched.routes)).await,
        [ours.prefix]
    );
    assert_eq!(calls(&table), [Call::Drift, Call::Install(ours.prefix)]);
}

#[tokio::test]
async fn remove_all_removes_every_route_of_ours() {
    let (mut core, table) =
        core_with(&[route("203.0.113.10/32", 3), route("2001:db8::1/128", 3)]).await;
    core.remove_all().await.unwrap();
    assert_eq!(calls(&table), [Call::RemoveMany(2)]);
    assert!(table.routes.lock().unwrap().is_empty());
}
