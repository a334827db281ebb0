//! Dereference: who the MovieApp is, and what it refers to in the cluster
//! (the TMDB Secret, the generated auth Secret) and in the per-object memory
//! (the last complete AWS pass). Reads only.

use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::children;
use super::memory::{PassInputs, Reread, Verified};
use super::{ADOPT_ANNOTATION, Context, kube_category};
use crate::aws::AwsClients;
use crate::aws::tags::Owner;
use crate::conditions::PartState;
use crate::crd::MovieApp;
use crate::naming::{AppId, PhysicalNames};
use crate::provision::role::WorkerRoles;
use crate::provision::{Mode, Target};
use crate::reason::Reason;

/// Why dereferencing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the MovieApp has no {0}")]
    Malformed(&'static str),
    #[error("reading the auth Secret failed: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed_object",
            Error::Kube(error) => kube_category(error),
        }
    }
}

/// Who a MovieApp is, for every step after this one.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    pub app: &'a MovieApp,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Where its AWS resources live: as set, else as first used, else the
    /// operator's default.
    pub region: String,
    /// `movieapp.io/adopt: "true"`.
    pub adopt: bool,
    /// The operator's cluster id (`--cluster-id`).
    pub cluster: String,
    /// The worker roles the operator makes, if it does.
    pub worker_roles: Option<WorkerRoles>,
}

impl<'a> Object<'a> {
    pub fn of(app: &'a MovieApp, default_region: &str, cluster: &str) -> Result<Self, Error> {
        Ok(Self {
            app,
            namespace: app.namespace().ok_or(Error::Malformed("namespace"))?,
            name: app.name_any(),
            uid: app.uid().ok_or(Error::Malformed("uid"))?,
            region: effective_region(app, default_region),
            adopt: app
                .annotations()
                .get(ADOPT_ANNOTATION)
                .is_some_and(|v| v == "true"),
            cluster: cluster.to_owned(),
            worker_roles: None,
        })
    }

    /// The same object, for an operator that makes the worker roles as
    /// `config` says.
    pub fn configured(mut self, config: &crate::config::RunConfig) -> Self {
        // Checked at start: a bad pair never reaches a reconcile.
        self.worker_roles = config.worker_roles().ok().flatten();
        self
    }

    /// The owner tags every AWS resource of this MovieApp carries.
    pub fn owner(&self) -> Owner {
        Owner {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// What provisioning needs to know about this MovieApp.
    pub fn target<'t>(&'t self, aws: &'t AwsClients, owner: &'t Owner) -> Target<'t> {
        Target {
            aws,
            owner,
            id: AppId {
                namespace: &self.namespace,
                name: &self.name,
            },
            spec: &self.app.spec,
            adopt: self.adopt,
            previous: self.app.status.as_ref(),
            generation: self.app.metadata.generation,
            mode: Mode::Manage,
            tags: None,
            light: None,
            worker_roles: self.worker_roles.as_ref(),
        }
    }

    /// The physical names of every AWS resource this MovieApp manages:
    /// what an AWS change event names.
    pub fn physical_names(&self) -> Vec<String> {
        let id = AppId {
            namespace: &self.namespace,
            name: &self.name,
        };
        PhysicalNames::of(id, &self.app.spec).all()
    }

    /// What an AWS pass of this MovieApp depends on.
    pub fn pass_inputs(&self) -> PassInputs {
        PassInputs {
            generation: self.app.metadata.generation,
            adopt: self.adopt,
            region: self.region.clone(),
        }
    }
}

/// The region a MovieApp's resources live in: as set, else as first used,
/// else the operator's default.
pub fn effective_region(app: &MovieApp, default: &str) -> String {
    app.spec
        .region
        .clone()
        .or_else(|| app.status.as_ref().and_then(|s| s.region.clone()))
        .unwrap_or_else(|| default.to_owned())
}

/// The generated Secret with the worker's token signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSecret {
    pub name: String,
    pub state: AuthSecretState,
}

/// Whether the auth Secret's name is free, ours, or taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSecretState {
    /// No Secret has the name: the operator creates it.
    Missing,
    /// Controlled by this MovieApp.
    Ours,
    /// Someone else's Secret has the name: never used nor touched (the
    /// description says whose).
    Foreign(String),
}

impl AuthSecretState {
    /// The state of the Secret whose metadata is `meta` (`None`: missing).
    pub fn of(meta: Option<&kube::api::ObjectMeta>, uid: &str) -> Self {
        match meta {
            None => Self::Missing,
            Some(meta) if children::controlled_by(meta, uid) => Self::Ours,
            Some(meta) => Self::Foreign(children::foreign_description("Secret", meta)),
        }
    }

    /// The worker's state when the name is taken.
    pub fn conflict(&self) -> Option<PartState> {
        match self {
            Self::Foreign(description) => Some(PartState::blocked(
                Reason::NameConflict,
                children::conflict_message(std::slice::from_ref(description)),
            )),
            _ => None,
        }
    }
}

/// What the next steps need, read.
#[derive(Debug)]
pub struct Dereferenced<'a> {
    pub object: Object<'a>,
    /// The TMDB Secret and key are there; `Err` carries the worker's state.
    pub tmdb_secret: Result<(), PartState>,
    pub auth_secret: AuthSecret,
    /// The last complete AWS pass, when it was made for this spec and
    /// nothing asks to read AWS again (a resync, an AWS change event): a
    /// reconcile that a child's change causes needs the Kubernetes side only.
    pub reused: Option<Verified>,
    /// The last complete AWS pass for this spec, however old: what a resync
    /// that cannot read AWS keeps.
    pub last: Option<Verified>,
    /// When the reconcile's AWS pass starts.
    pub started: Instant,
    /// The resync is due (and no AWS change event asks for more): the
    /// region's ownership tag snapshot may stand in for tag reads.
    pub resync: bool,
    /// This resync may be a light pass, keeping from `last` what only the
    /// operator writes: AWS change events are on and `last`'s complete pass
    /// is younger than `--full-verification-interval`.
    pub light: bool,
}

pub async fn dereference<'a>(
    app: &'a MovieApp,
    ctx: &Context,
    reread: Option<Reread>,
) -> Result<Dereferenced<'a>, Error> {
    let config = &ctx.shared.config;
    let object = Object::of(app, &config.default_region, &config.cluster_id)?.configured(config);
    let inputs = object.pass_inputs();
    ctx.memory.index(&object.uid, object.physical_names());
    let last = ctx.memory.last_verified(&object.uid, &inputs);
    let reused = last.clone().filter(|_| reread.is_none());
    let resync = reread == Some(Reread::Resync);
    let light = may_be_light(reread, config.full_verification(), last.as_ref());
    let secrets: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &object.namespace);
    let auth_name = children::auth_secret_name(&object.name);
    let (tmdb_secret, auth) = tokio::join!(
        check_tmdb_secret(&secrets, app, &object.namespace),
        secrets.get_metadata_opt(&auth_name),
    );
    let auth = auth?;
    Ok(Dereferenced {
        tmdb_secret,
        auth_secret: AuthSecret {
            name: auth_name,
            state: AuthSecretState::of(auth.as_ref().map(|a| &a.metadata), &object.uid),
        },
        reused,
        last,
        started: Instant::now(),
        resync,
        light,
        object,
    })
}

/// Whether this reconcile may be a light pass (see
/// [`crate::provision::Target::light`]): a resync, with AWS change events on
/// (`full_verification` is then `--full-verification-interval`), after a
/// complete pass younger than that. An AWS change event, a spec change, a
/// first reconcile and a pass that failed (nothing remembered) read
/// everything.
pub fn may_be_light(
    reread: Option<Reread>,
    full_verification: Option<std::time::Duration>,
    last: Option<&Verified>,
) -> bool {
    reread == Some(Reread::Resync)
        && full_verification
            .is_some_and(|full| last.is_some_and(|last| last.full_at.elapsed() < full))
}

/// Checks the referenced TMDB Secret and key; `Err` carries the worker's state
/// (also what `kubectl movieapp status` says of the Secret).
pub async fn check_tmdb_secret(
    secrets: &Api<Secret>,
    app: &MovieApp,
    namespace: &str,
) -> Result<(), PartState> {
    let reference = &app.spec.worker.tmdb.api_key_secret_ref;
    match secrets.get_opt(&reference.name).await {
        Ok(Some(secret)) => {
            let has_key = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .is_some_and(|v| !v.0.is_empty())
                || secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&reference.key))
                    .is_some_and(|v| !v.is_empty());
            if has_key {
                Ok(())
            } else {
                Err(PartState::blocked(
                    Reason::SecretKeyNotFound,
                    format!(
                        "Secret {}/{} has no non-empty key {}",
                        namespace, reference.name, reference.key
                    ),
                ))
            }
        }
        Ok(None) => Err(PartState::blocked(
            Reason::SecretNotFound,
            format!(
                "Secret {}/{} (the TMDB API key) does not exist",
                namespace, reference.name
            ),
        )),
        Err(error) => Err(PartState::progressing(
            Reason::SecretUnreadable,
            format!("reading Secret {}/{}: {error}", namespace, reference.name),
        )),
    }
}
