//! The route requests the agent makes of the kernel, as a trait: the agent's kernel
//! core runs against [`Kernel`] in the service and against a fake in its unit tests.
use std::future::Future;

use ipnet::IpNet;

use super::{ForeignRoute, Kernel, KernelError, KernelView, Route, Routes};

/// Routes the agent has drifted from the kernel: each prefix with what the kernel
/// holds for it (None: nothing).
pub type Drift = Vec<(IpNet, Option<Route>)>;

/// hostbgp's routes in the kernel: read them, install and remove them.
pub trait RouteTable {
    /// A consistent snapshot of links, addresses and our routes.
    fn dump(&self) -> impl Future<Output = Result<KernelView, KernelError>> + Send;
    /// Our routes whose kernel version differs from `said`.
    fn route_drift(&self, said: &Routes)
        -> impl Future<Output = Result<Drift, KernelError>> + Send;
    /// Installs or replaces one route.
    fn install_route(&self, route: &Route) -> impl Future<Output = Result<(), KernelError>> + Send;
    /// Removes one of our routes; one already gone is not an error.
    fn remove_route(&self, prefix: &IpNet) -> impl Future<Output = Result<(), KernelError>> + Send;
    /// Installs many routes at once; the error says that at least one failed.
    fn install_routes(
        &self,
        routes: &[Route],
    ) -> impl Future<Output = Result<(), KernelError>> + Send;
    /// Removes many of our routes at once.
    fn remove_routes(
        &self,
        prefixes: &[IpNet],
    ) -> impl Future<Output = Result<(), KernelError>> + Send;
    /// Removes exactly this route of another protocol (its prefix, at its metric).
    fn remove_foreign(
        &self,
        route: &ForeignRoute,
    ) -> impl Future<Output = Result<(), KernelError>> + Send;
}

impl RouteTable for Kernel {
    async fn dump(&self) -> Result<KernelView, KernelError> {
        Kernel::dump(self).await
    }
    async fn route_drift(&self, said: &Routes) -> Result<Drift, KernelError> {
        Kernel::route_drift(self, said).await
    }
    async fn install_route(&self, route: &Route) -> Result<(), KernelError> {
        Kernel::install_route(self, route).await
    }
    async fn remove_route(&self, prefix: &IpNet) -> Result<(), KernelError> {
        Kernel::remove_route(self, prefix).await
    }
    async fn install_routes(&self, routes: &[Route]) -> Result<(), KernelError> {
        Kernel::install_routes(self, routes).await
    }
    async fn remove_routes(&self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        Kernel::remove_routes(self, prefixes).await
    }
    async fn remove_foreign(&self, route: &ForeignRoute) -> Result<(), KernelError> {
        Kernel::remove_foreign_route(self, &route.prefix, route.protocol, route.metric).await
    }
}
