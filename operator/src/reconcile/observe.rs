//! ObserveOnly: `spec.managementPolicy: ObserveOnly` runs the same pipeline
//! as `Full` but stops every write at its plan.
//!
//! [`access`] decides, after the pause gate, what the writing steps may do.
//! Only [`Access::Manage`] carries the pause gate's [`Writable`], so
//! nothing can act on AWS or the children without it. With
//! [`Access::Observe`], [`super::provision`] runs provisioning's observe and
//! plan stages and reports each planned write as a difference
//! ([`crate::provision::Mode::Observe`]), and never creates the auth Secret;
//! [`super::apply`] compares the built children with what exists instead of
//! applying them; [`super::status`] lists every difference in the `Drifted`
//! condition (with one Warning Event per change of the list); a deletion
//! removes nothing ([`super::cleanup::release`]) and an ObserveOnly MovieApp
//! gets no finalizer.

use super::pause::Writable;
use crate::crd::{ManagementPolicy, MovieApp};
use crate::provision::Mode;

/// What the writing steps may do for one reconcile.
#[derive(Debug, Clone, Copy)]
pub enum Access<'w> {
    /// Create, repair, tag, apply and delete (`managementPolicy: Full`, not paused).
    Manage(&'w Writable),
    /// Read and compare only (`managementPolicy: ObserveOnly`).
    Observe,
}

impl Access<'_> {
    /// How provisioning runs under this access.
    pub fn mode(&self) -> Mode {
        match self {
            Access::Manage(_) => Mode::Manage,
            Access::Observe => Mode::Observe,
        }
    }
}

/// The access the spec's management policy grants a MovieApp that is not paused.
pub fn access<'w>(app: &MovieApp, writable: &'w Writable) -> Access<'w> {
    match app.spec.management_policy {
        ManagementPolicy::Full => Access::Manage(writable),
        ManagementPolicy::ObserveOnly => Access::Observe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::pause;

    #[test]
    fn only_full_grants_writes() {
        let mut app = MovieApp::new("shop", serde_json::from_str("{}").expect("empty spec"));
        let writable = pause::check(&app).expect("not paused");
        assert_eq!(access(&app, &writable).mode(), Mode::Manage);
        app.spec.management_policy = ManagementPolicy::ObserveOnly;
        assert_eq!(access(&app, &writable).mode(), Mode::Observe);
    }
}
