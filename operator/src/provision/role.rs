//! The worker's IAM role as a resource [`Kind`]: one per MovieApp, made by
//! the operator when it is configured with the cluster's OIDC provider and
//! the worker permissions boundary (`--worker-role-oidc-provider-arn`,
//! `--worker-role-boundary-arn`).
//!
//! The role is trusted by the worker's ServiceAccount alone (IRSA:
//! `sts:AssumeRoleWithWebIdentity` from the OIDC provider, `sub` the
//! ServiceAccount, `aud` `sts.amazonaws.com`), carries one inline policy —
//! the document `make iam-policies` renders for the MovieApp
//! ([`crate::policies::worker`]), so exactly the worker's declared actions on
//! exactly this MovieApp's resources — and always the permissions boundary.
//! EKS Pod Identity is not offered: moto (the local AWS) serves none of its
//! APIs, so it could not be tested.
//!
//! The role carries nothing else: an inline policy of another name or a
//! managed policy someone attached widens it within the boundary, so each is
//! drift, removed like any other (ACK's role controller does the same).
//!
//! IAM returns policy documents URL-encoded; they are decoded here and
//! compared by meaning ([`super::policy::equivalent`]).

use serde_json::json;

use super::Target;
use super::common::Halt;
use super::policy;
use super::resource::{Deletion, Effect, Kind, Tags};
use crate::aws::{self, AwsError};
use crate::naming::AppId;
use crate::policies;
use crate::reason::Reason;

const SERVICE: &str = "iam";

/// The name of the one inline policy of a worker role.
pub const INLINE_POLICY: &str = "movieapp-worker";
/// The audience of the ServiceAccount tokens EKS projects for IRSA.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";

/// The operator's configuration for the worker roles it makes: both ARNs
/// given, checked once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRoles {
    /// `arn:<partition>:iam::<account>:oidc-provider/<issuer>`.
    pub oidc_provider_arn: String,
    /// `arn:<partition>:iam::<account>:policy/<name>`: every role's boundary.
    pub boundary_arn: String,
    /// Tests only (`run --worker-role-actions-only`): the inline policy
    /// rendered by [`policies::actions_only`].
    pub actions_only: bool,
}

/// An IAM ARN's parts: partition, account, resource.
fn iam_arn<'a>(arn: &'a str, flag: &str) -> Result<(&'a str, &'a str, &'a str), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [head, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(format!(
            "{flag}: {arn:?} is not an ARN (arn:aws:iam::ACCOUNT:...)"
        ));
    };
    if *head != "arn" || !["aws", "aws-cn", "aws-us-gov"].contains(partition) {
        return Err(format!(
            "{flag}: {arn:?} is not an ARN of the aws, aws-cn or aws-us-gov partition"
        ));
    }
    if *service != "iam" || !region.is_empty() {
        return Err(format!(
            "{flag}: {arn:?} is not an IAM ARN (arn:{partition}:iam::ACCOUNT:...)"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{flag}: {arn:?} does not name a 12-digit AWS account"
        ));
    }
    Ok((partition, account, resource))
}

impl WorkerRoles {
    /// Checks both ARNs: an IAM OIDC provider and an IAM policy of the same
    /// account and partition, without wildcards.
    pub fn new(oidc_provider_arn: &str, boundary_arn: &str) -> Result<Self, String> {
        let oidc_flag = "--worker-role-oidc-provider-arn";
        let boundary_flag = "--worker-role-boundary-arn";
        let (oidc_partition, oidc_account, provider) = iam_arn(oidc_provider_arn, oidc_flag)?;
        let issuer = provider.strip_prefix("oidc-provider/").unwrap_or_default();
        let issuer_ok = !issuer.is_empty()
            && !issuer.contains("://")
            && issuer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b));
        if !issuer_ok {
            return Err(format!(
                "{oidc_flag}: {oidc_provider_arn:?} is not an OIDC provider ARN \
                 (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID)"
            ));
        }
        let (partition, account, policy) = iam_arn(boundary_arn, boundary_flag)?;
        let name = policy.strip_prefix("policy/").unwrap_or_default();
        let name_ok = !name.is_empty()
            && !name.ends_with('/')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/-".contains(&b));
        if !name_ok {
            return Err(format!(
                "{boundary_flag}: {boundary_arn:?} is not an IAM policy ARN \
                 (arn:aws:iam::ACCOUNT:policy/NAME)"
            ));
        }
        if (partition, account) != (oidc_partition, oidc_account) {
            return Err(format!(
                "{boundary_flag} ({boundary_arn}) and {oidc_flag} ({oidc_provider_arn}) \
                 must be of the same account and partition"
            ));
        }
        Ok(Self {
            oidc_provider_arn: oidc_provider_arn.to_owned(),
            boundary_arn: boundary_arn.to_owned(),
            actions_only: false,
        })
    }

    /// The issuer of the provider, as IAM's condition keys name it
    /// (`oidc.eks.us-east-1.amazonaws.com/id/ID`).
    pub fn issuer(&self) -> &str {
        self.oidc_provider_arn
            .split_once(":oidc-provider/")
            .map_or("", |(_, issuer)| issuer)
    }

    fn partition_and_account(&self) -> (&str, &str) {
        let mut parts = self.boundary_arn.split(':').skip(1);
        let partition = parts.next().unwrap_or("aws");
        let account = parts.nth(2).unwrap_or_default();
        (partition, account)
    }

    /// The ARN a role of this name has.
    pub fn role_arn(&self, name: &str) -> String {
        let (partition, account) = self.partition_and_account();
        format!("arn:{partition}:iam::{account}:role/{name}")
    }

    /// The trust policy of the worker role: the ServiceAccount
    /// `namespace/service_account`'s projected tokens, and nothing else.
    pub fn trust_policy(&self, namespace: &str, service_account: &str) -> serde_json::Value {
        let issuer = self.issuer();
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Federated": self.oidc_provider_arn },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        format!("{issuer}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                        format!("{issuer}:aud"): IRSA_AUDIENCE,
                    }
                }
            }]
        })
    }

    /// Everything the worker role of `target`'s MovieApp declares. The
    /// inline policy is the one `make iam-policies` renders for it.
    pub fn desired(&self, target: &Target<'_>) -> Result<DesiredRole, Halt> {
        let (_, account) = self.partition_and_account();
        let rendering = policies::Target {
            account: account.to_owned(),
            region: target.aws.region.clone(),
            prefix: format!("{}-", crate::naming::PREFIX),
            cluster: target.owner.cluster.clone(),
        };
        let app = policies::App {
            namespace: target.id.namespace.to_owned(),
            name: target.id.name.to_owned(),
            spec: target.spec.clone(),
        };
        let mut inline = policies::worker()
            .render(&rendering, Some(&app), &[])
            .map_err(|e| Halt::blocked(Reason::InvalidSpec, e))?;
        if self.actions_only {
            inline = policies::actions_only(&inline)
                .map_err(|e| Halt::blocked(Reason::InvalidSpec, e))?;
        }
        // The worker's ServiceAccount is named after the MovieApp.
        let trust = self.trust_policy(target.id.namespace, target.id.name);
        Ok(DesiredRole {
            trust: trust.to_string(),
            inline,
            boundary: self.boundary_arn.clone(),
        })
    }
}

/// The role's physical name: the naming rule of every resource, within
/// IAM's 64 characters.
pub fn role_name(id: AppId<'_>) -> String {
    id.physical_name(
        crate::naming::component::WORKER_ROLE,
        crate::naming::limits::IAM_ROLE,
    )
}

/// What a worker role declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRole {
    /// The trust policy, as JSON text.
    pub trust: String,
    /// The inline policy, as JSON text.
    pub inline: String,
    /// The permissions boundary's ARN.
    pub boundary: String,
}

/// A role that exists, as GetRole reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub arn: String,
    /// The trust policy, decoded.
    pub trust: String,
    pub boundary: Option<String>,
    pub tags: Tags,
}

/// A role's documents and boundary as IAM has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleSettings {
    pub trust: String,
    /// The inline policy [`INLINE_POLICY`]; `None` when missing.
    pub inline: Option<String>,
    pub boundary: Option<String>,
    /// The names of inline policies other than [`INLINE_POLICY`].
    pub other_inline: Vec<String>,
    /// The ARNs of managed policies attached to the role.
    pub attached: Vec<String>,
}

/// One write to a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// PutRolePermissionsBoundary: first, since it caps everything else.
    Boundary,
    /// PutRolePolicy.
    Inline,
    /// UpdateAssumeRolePolicy.
    Trust,
    /// DeleteRolePolicy of an inline policy someone else put.
    RemoveInline(String),
    /// DetachRolePolicy of a managed policy someone attached.
    Detach(String),
}

/// The next change that brings `actual` to `desired`, compared by meaning.
/// Pure.
pub fn plan(desired: &DesiredRole, actual: &RoleSettings) -> Option<RoleChange> {
    if actual.boundary.as_deref() != Some(desired.boundary.as_str()) {
        return Some(RoleChange::Boundary);
    }
    if !actual
        .inline
        .as_deref()
        .is_some_and(|inline| policy::equivalent(&desired.inline, inline))
    {
        return Some(RoleChange::Inline);
    }
    if !policy::equivalent(&desired.trust, &actual.trust) {
        return Some(RoleChange::Trust);
    }
    if let Some(name) = actual.other_inline.first() {
        return Some(RoleChange::RemoveInline(name.clone()));
    }
    if let Some(arn) = actual.attached.first() {
        return Some(RoleChange::Detach(arn.clone()));
    }
    None
}

/// Decodes the `%XX` escapes IAM puts in the documents it returns (and `+`
/// as a space); a document that is already plain JSON is returned as it is.
pub fn decode_document(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// IAM roles, as a [`Kind`]; named by their physical name.
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a> {
    iam: &'a aws_sdk_iam::Client,
}

impl<'a> Roles<'a> {
    pub fn of(target: &Target<'a>) -> Self {
        Self {
            iam: &target.aws.iam,
        }
    }
}

impl Kind for Roles<'_> {
    type Id = String;
    type Desired = DesiredRole;
    type Found = Role;
    type Actual = RoleSettings;
    type Change = RoleChange;

    /// The three settings, and two policies someone else added; more of
    /// those wait for the next pass.
    const MAX_CHANGES_PER_PASS: usize = 5;

    fn what(name: &String) -> String {
        format!("IAM role {name}")
    }

    async fn find(&self, name: &String) -> Result<Option<Role>, Halt> {
        let output = match aws::send(
            SERVICE,
            "GetRole",
            self.iam.get_role().role_name(name).send(),
        )
        .await
        {
            Ok(output) => output,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let Some(role) = output.role else {
            return Ok(None);
        };
        Ok(Some(Role {
            name: role.role_name,
            arn: role.arn,
            trust: role
                .assume_role_policy_document
                .as_deref()
                .map(decode_document)
                .unwrap_or_default(),
            boundary: role
                .permissions_boundary
                .and_then(|b| b.permissions_boundary_arn),
            tags: role
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect(),
        }))
    }

    /// Read with the role (GetRole returns its tags).
    async fn tags(&self, role: &Role) -> Result<Option<Tags>, AwsError> {
        Ok(Some(role.tags.clone()))
    }

    /// The inline policies' names, ours read only when listed, and the
    /// attached managed policies.
    async fn observe(&self, role: &Role, _: &DesiredRole) -> Result<RoleSettings, Halt> {
        let (ours, other_inline): (Vec<String>, Vec<String>) = self
            .inline_names(&role.name)
            .await?
            .into_iter()
            .partition(|name| name == INLINE_POLICY);
        let inline = if ours.is_empty() {
            None
        } else {
            let request = self
                .iam
                .get_role_policy()
                .role_name(&role.name)
                .policy_name(INLINE_POLICY)
                .send();
            match aws::send(SERVICE, "GetRolePolicy", request).await {
                Ok(output) => Some(decode_document(&output.policy_document)),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(error.into()),
            }
        };
        Ok(RoleSettings {
            trust: role.trust.clone(),
            inline,
            boundary: role.boundary.clone(),
            other_inline,
            attached: self.attached(&role.name).await?,
        })
    }

    fn plan(desired: &DesiredRole, actual: &RoleSettings) -> Result<Option<RoleChange>, Halt> {
        Ok(plan(desired, actual))
    }

    fn effect(what: &str, change: &RoleChange) -> Effect {
        Effect::Changed(match change {
            RoleChange::Boundary => format!("{what}: set its permissions boundary"),
            RoleChange::Inline => format!("{what}: set its inline policy {INLINE_POLICY}"),
            RoleChange::Trust => format!("{what}: set its trust policy"),
            RoleChange::RemoveInline(name) => {
                format!("{what}: removed the inline policy {name} someone else put")
            }
            RoleChange::Detach(arn) => {
                format!("{what}: detached the managed policy {arn} someone attached")
            }
        })
    }

    fn assume(
        desired: &DesiredRole,
        actual: &RoleSettings,
        change: &RoleChange,
    ) -> Option<RoleSettings> {
        let mut next = actual.clone();
        match change {
            RoleChange::Boundary => next.boundary = Some(desired.boundary.clone()),
            RoleChange::Inline => next.inline = Some(desired.inline.clone()),
            RoleChange::Trust => next.trust = desired.trust.clone(),
            RoleChange::RemoveInline(name) => next.other_inline.retain(|n| n != name),
            RoleChange::Detach(arn) => next.attached.retain(|a| a != arn),
        }
        Some(next)
    }

    /// The boundary and the ownership tags go with CreateRole (the
    /// operator's policy allows no CreateRole without that boundary); the
    /// inline policy right after it. Interrupted in between, the next pass
    /// finds the role without it and puts it.
    async fn create(
        &self,
        name: &String,
        desired: &DesiredRole,
        tags: &Tags,
    ) -> Result<Role, Halt> {
        let mut request = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(&desired.trust)
            .permissions_boundary(&desired.boundary)
            .description("The api-worker's role of one MovieApp, made by movieapp-operator");
        for (key, value) in tags {
            let tag = aws_sdk_iam::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| super::common::build_error(SERVICE, "CreateRole", e))?;
            request = request.tags(tag);
        }
        let output = match aws::send(SERVICE, "CreateRole", request.send()).await {
            Ok(output) => output,
            // Made between our lookup and our create: the next pass looks
            // at it (and checks its owner) again.
            Err(error) if error.code.as_deref() == Some("EntityAlreadyExists") => {
                return Err(Halt::progressing(
                    Reason::Creating,
                    format!(
                        "{} appeared while being created; checking it again",
                        Self::what(name)
                    ),
                ));
            }
            Err(error) => return Err(error.into()),
        };
        let arn = output.role.map(|r| r.arn).unwrap_or_default();
        self.put_inline(name, desired).await?;
        Ok(Role {
            name: name.clone(),
            arn,
            trust: desired.trust.clone(),
            boundary: Some(desired.boundary.clone()),
            tags: tags.clone(),
        })
    }

    async fn tag(&self, role: &Role, tags: &Tags) -> Result<(), AwsError> {
        let mut request = self.iam.tag_role().role_name(&role.name);
        for (key, value) in tags {
            let tag = aws_sdk_iam::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| super::common::build_error(SERVICE, "TagRole", e))?;
            request = request.tags(tag);
        }
        aws::send(SERVICE, "TagRole", request.send()).await?;
        Ok(())
    }

    async fn untag(&self, role: &Role, keys: &[String]) -> Result<(), AwsError> {
        let request = self
            .iam
            .untag_role()
            .role_name(&role.name)
            .set_tag_keys(Some(keys.to_vec()));
        aws::send(SERVICE, "UntagRole", request.send()).await?;
        Ok(())
    }

    async fn act(
        &self,
        role: &Role,
        desired: &DesiredRole,
        actual: RoleSettings,
        change: &RoleChange,
    ) -> Result<RoleSettings, Halt> {
        match change {
            RoleChange::Boundary => {
                let request = self
                    .iam
                    .put_role_permissions_boundary()
                    .role_name(&role.name)
                    .permissions_boundary(&desired.boundary);
                aws::send(SERVICE, "PutRolePermissionsBoundary", request.send()).await?;
            }
            RoleChange::Inline => self.put_inline(&role.name, desired).await?,
            RoleChange::Trust => {
                let request = self
                    .iam
                    .update_assume_role_policy()
                    .role_name(&role.name)
                    .policy_document(&desired.trust);
                aws::send(SERVICE, "UpdateAssumeRolePolicy", request.send()).await?;
            }
            RoleChange::RemoveInline(name) => self.delete_inline(&role.name, name).await?,
            RoleChange::Detach(arn) => self.detach(&role.name, arn).await?,
        }
        Ok(Self::assume(desired, &actual, change).unwrap_or(actual))
    }

    /// The inline and managed policies first (IAM refuses to delete a role
    /// that has any), then the role. An instance profile someone added
    /// also blocks it: that is left to a human, and said.
    async fn delete(&self, role: &Role) -> Result<Deletion, AwsError> {
        for name in self.inline_names(&role.name).await? {
            self.delete_inline(&role.name, &name).await?;
        }
        for arn in self.attached(&role.name).await? {
            self.detach(&role.name, &arn).await?;
        }
        let request = self.iam.delete_role().role_name(&role.name);
        match aws::send(SERVICE, "DeleteRole", request.send()).await {
            Ok(_) => Ok(Deletion::Started),
            Err(error) if error.code.as_deref() == Some("DeleteConflict") => {
                Ok(Deletion::NotYet(format!(
                    "{} is still in an instance profile someone added; remove it from \
                     the profile to let it be deleted: {}",
                    Self::what(&role.name),
                    error.message
                )))
            }
            Err(error) => Err(error),
        }
    }
}

impl Roles<'_> {
    /// The names of the role's inline policies.
    async fn inline_names(&self, role: &str) -> Result<Vec<String>, AwsError> {
        aws::all_pages(|marker| async move {
            let request = self
                .iam
                .list_role_policies()
                .role_name(role)
                .set_marker(marker);
            let output = aws::send(SERVICE, "ListRolePolicies", request.send()).await?;
            let next = output.is_truncated.then_some(output.marker).flatten();
            Ok((output.policy_names, next))
        })
        .await
    }

    /// The ARNs of the managed policies attached to the role.
    async fn attached(&self, role: &str) -> Result<Vec<String>, AwsError> {
        aws::all_pages(|marker| async move {
            let request = self
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .set_marker(marker);
            let output = aws::send(SERVICE, "ListAttachedRolePolicies", request.send()).await?;
            let next = output.is_truncated.then_some(output.marker).flatten();
            let arns = output
                .attached_policies
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.policy_arn)
                .collect();
            Ok((arns, next))
        })
        .await
    }

    /// DeleteRolePolicy; already gone is done.
    async fn delete_inline(&self, role: &str, name: &str) -> Result<(), AwsError> {
        let request = self
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(name);
        match aws::send(SERVICE, "DeleteRolePolicy", request.send()).await {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(()),
        }
    }

    /// DetachRolePolicy; already detached is done.
    async fn detach(&self, role: &str, arn: &str) -> Result<(), AwsError> {
        let request = self
            .iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(arn);
        match aws::send(SERVICE, "DetachRolePolicy", request.send()).await {
            Err(error) if !error.is_not_found() => Err(error),
            _ => Ok(()),
        }
    }

    async fn put_inline(&self, name: &str, desired: &DesiredRole) -> Result<(), AwsError> {
        let request = self
            .iam
            .put_role_policy()
            .role_name(name)
            .policy_name(INLINE_POLICY)
            .policy_document(&desired.inline);
        aws::send(SERVICE, "PutRolePolicy", request.send()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OIDC: &str =
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123";
    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/movieapp-worker-boundary";

    fn roles() -> WorkerRoles {
        WorkerRoles::new(OIDC, BOUNDARY).expect("valid")
    }

    #[test]
    fn the_trust_policy_names_the_provider_the_service_account_and_the_audience() {
        let trust = roles().trust_policy("movies", "netflix-clone");
        assert_eq!(
            trust,
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Federated": OIDC },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": { "StringEquals": {
                        "oidc.eks.us-east-1.amazonaws.com/id/ABC123:sub":
                            "system:serviceaccount:movies:netflix-clone",
                        "oidc.eks.us-east-1.amazonaws.com/id/ABC123:aud": "sts.amazonaws.com",
                    }}
                }]
            })
        );
    }

    #[test]
    fn bad_arns_are_refused_with_the_flag_named() {
        for (oidc, boundary, needle) in [
            ("", BOUNDARY, "--worker-role-oidc-provider-arn"),
            (
                "oidc.eks.us-east-1.amazonaws.com/id/ABC",
                BOUNDARY,
                "not an ARN",
            ),
            (
                "arn:aws:iam::123456789012:role/x",
                BOUNDARY,
                "not an OIDC provider ARN",
            ),
            (
                "arn:aws:iam::123456789012:oidc-provider/https://oidc.example",
                BOUNDARY,
                "not an OIDC provider ARN",
            ),
            (
                "arn:aws:iam::1234:oidc-provider/oidc.example/id/1",
                BOUNDARY,
                "12-digit",
            ),
            (
                "arn:aws:sts::123456789012:oidc-provider/oidc.example",
                BOUNDARY,
                "not an IAM ARN",
            ),
            (
                OIDC,
                "arn:aws:iam::123456789012:policy/",
                "--worker-role-boundary-arn",
            ),
            (
                OIDC,
                "arn:aws:iam::123456789012:policy/*",
                "not an IAM policy ARN",
            ),
            (
                OIDC,
                "arn:aws:iam::123456789012:role/b",
                "not an IAM policy ARN",
            ),
            (
                OIDC,
                "arn:aws:iam::210987654321:policy/b",
                "same account and partition",
            ),
            (OIDC, "arn:other:iam::123456789012:policy/b", "partition"),
        ] {
            let error = WorkerRoles::new(oidc, boundary).expect_err(needle);
            assert!(error.contains(needle), "{oidc} {boundary}: {error}");
        }
        assert_eq!(
            roles().role_arn("movieapp-a-b-12345678-worker"),
            "arn:aws:iam::123456789012:role/movieapp-a-b-12345678-worker"
        );
    }

    #[test]
    fn role_names_follow_the_naming_rule_within_64_characters() {
        let short = role_name(AppId {
            namespace: "movies",
            name: "netflix-clone",
        });
        assert!(
            short.starts_with("movieapp-movies-netflix-clone-") && short.ends_with("-worker"),
            "{short}"
        );
        let long_name = "n".repeat(253);
        let long = role_name(AppId {
            namespace: "a-namespace-with-a-long-name",
            name: &long_name,
        });
        assert!(long.len() <= 64, "{long}: {}", long.len());
        assert!(long.ends_with("-worker"));
        let other = role_name(AppId {
            namespace: "a-namespace-with-a-long-name",
            name: &format!("{long_name}x"),
        });
        assert_ne!(long, other, "the hash keeps shortened names apart");
    }

    #[test]
    fn documents_are_decoded_as_iam_returns_them() {
        assert_eq!(
            decode_document("%7B%22Version%22%3A%20%222012-10-17%22%7D"),
            "{\"Version\": \"2012-10-17\"}"
        );
        assert_eq!(decode_document("{\"a\": \"%20\"}"), "{\"a\": \"%20\"}");
        assert_eq!(decode_document("%7Bbad%zz%"), "{bad%zz%");
    }

    #[test]
    fn the_plan_puts_the_boundary_first_and_compares_by_meaning() {
        let desired = DesiredRole {
            trust: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRoleWithWebIdentity","Principal":{"Federated":"p"}}]}"#.into(),
            inline: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["a:B","a:C"],"Resource":"r"}]}"#.into(),
            boundary: BOUNDARY.into(),
        };
        let same = RoleSettings {
            // Reformatted and reordered: the same meaning.
            trust: r#"{ "Statement": [ { "Principal": {"Federated": "p"}, "Action": "sts:AssumeRoleWithWebIdentity", "Effect": "Allow" } ], "Version": "2012-10-17" }"#.into(),
            inline: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["a:C","a:B"],"Resource":["r"]}]}"#.into()),
            boundary: Some(BOUNDARY.into()),
            ..RoleSettings::default()
        };
        assert_eq!(plan(&desired, &same), None);
        let cases = [
            (
                RoleSettings {
                    boundary: None,
                    ..same.clone()
                },
                RoleChange::Boundary,
            ),
            (
                RoleSettings {
                    boundary: Some("arn:aws:iam::123456789012:policy/wider".into()),
                    inline: None,
                    ..same.clone()
                },
                RoleChange::Boundary,
            ),
            (
                RoleSettings {
                    inline: None,
                    ..same.clone()
                },
                RoleChange::Inline,
            ),
            (
                RoleSettings {
                    inline: Some(desired.inline.replace("a:C", "*")),
                    ..same.clone()
                },
                RoleChange::Inline,
            ),
            (
                RoleSettings {
                    trust: desired.trust.replace("\"p\"", "\"q\""),
                    ..same.clone()
                },
                RoleChange::Trust,
            ),
            (
                RoleSettings {
                    other_inline: vec!["wide".into(), "wider".into()],
                    attached: vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()],
                    ..same.clone()
                },
                RoleChange::RemoveInline("wide".into()),
            ),
            (
                RoleSettings {
                    attached: vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()],
                    ..same.clone()
                },
                RoleChange::Detach("arn:aws:iam::aws:policy/AdministratorAccess".into()),
            ),
        ];
        for (actual, change) in cases {
            assert_eq!(plan(&desired, &actual), Some(change.clone()), "{actual:?}");
            // What ObserveOnly predicts converges.
            let mut next = Roles::assume(&desired, &actual, &change).expect("predicted");
            for _ in 0..Roles::MAX_CHANGES_PER_PASS {
                match plan(&desired, &next) {
                    Some(c) => next = Roles::assume(&desired, &next, &c).expect("predicted"),
                    None => break,
                }
            }
            assert_eq!(plan(&desired, &next), None);
        }
    }
}
