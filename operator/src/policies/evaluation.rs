//! A small IAM policy evaluator: Allow and Deny statements, action and ARN
//! globs, and exactly the condition operators and keys the shipped policies
//! use (`aws:ResourceTag/*`, `aws:RequestTag/*`, `aws:TagKeys`,
//! `iam:PermissionsBoundary`).
//!
//! moto's enforcement checks actions only (and counts any `Condition` as a
//! deny), so scoping is proven here instead: the operator's own lifecycle
//! and attacks (`lifecycle` tests), and every request a real run recorded
//! (`movieapp-tests`' `iam_record`). Anything the evaluator does not know,
//! an operator, a key, `NotAction`, is refused with an error rather than
//! guessed at, so a policy that starts using it cannot pass by being
//! misread.

use std::collections::BTreeMap;

use serde_json::Value;

/// Tags by key.
pub type Tags = BTreeMap<String, String>;

/// One authorization AWS makes: an action on a resource, with the context
/// keys the service supplies for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `service:Action`, as IAM names it.
    pub action: String,
    /// The resource's ARN, or `*` for an action without a resource type.
    pub resource: String,
    /// `aws:ResourceTag/*`: the tags the resource carries before the call
    /// (none for a resource being created).
    pub resource_tags: Tags,
    /// `aws:RequestTag/*`: the tags the call sets (create or tag).
    pub request_tags: Tags,
    /// `aws:TagKeys`: the keys the call sets or removes.
    pub tag_keys: Vec<String>,
    /// `iam:PermissionsBoundary`: the boundary a CreateRole or
    /// PutRolePermissionsBoundary sets.
    pub permissions_boundary: Option<String>,
    /// What the request is, for a report.
    pub what: String,
}

/// What IAM decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

/// A policy the evaluator cannot read faithfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the evaluator cannot read this policy: {0}")]
pub struct Unsupported(pub String);

fn unsupported<T>(what: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(what.into()))
}

/// `*` and `?` as IAM reads them in actions and ARNs.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(value: &Value) -> Result<Vec<String>, Unsupported> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| match v.as_str() {
                Some(s) => Ok(s.to_owned()),
                None => unsupported(format!("{v} in a list of strings")),
            })
            .collect(),
        other => unsupported(format!("{other}: not a string or a list of strings")),
    }
}

/// The values of a context key in `request`, `None` when absent.
fn context(request: &Request, key: &str) -> Result<Option<Vec<String>>, Unsupported> {
    if let Some(tag) = key.strip_prefix("aws:ResourceTag/") {
        return Ok(request.resource_tags.get(tag).map(|v| vec![v.clone()]));
    }
    if let Some(tag) = key.strip_prefix("aws:RequestTag/") {
        return Ok(request.request_tags.get(tag).map(|v| vec![v.clone()]));
    }
    if key == "aws:TagKeys" {
        return Ok((!request.tag_keys.is_empty()).then(|| request.tag_keys.clone()));
    }
    if key == "iam:PermissionsBoundary" {
        return Ok(request.permissions_boundary.clone().map(|b| vec![b]));
    }
    unsupported(format!("the condition key {key}"))
}

/// The condition operators [`holds`] implements.
const OPERATORS: [&str; 5] = [
    "StringEquals",
    "StringEqualsIfExists",
    "ArnEquals",
    "ForAllValues:StringEquals",
    "Null",
];

/// Every statement of `policy` is one the evaluator reads faithfully: only
/// known elements, operators and keys, whether or not a request reaches it.
fn check(policy: &Value) -> Result<&[Value], Unsupported> {
    let Some(statements) = policy["Statement"].as_array() else {
        return unsupported("a document without a Statement list");
    };
    for statement in statements {
        for element in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
            if statement.get(element).is_some() {
                return unsupported(format!("a statement with {element}"));
            }
        }
        if !matches!(statement["Effect"].as_str(), Some("Allow" | "Deny")) {
            return unsupported(format!("Effect {}", statement["Effect"]));
        }
        strings(&statement["Action"])?;
        strings(&statement["Resource"])?;
        let Some(conditions) = statement.get("Condition") else {
            continue;
        };
        let Some(conditions) = conditions.as_object() else {
            return unsupported(format!("Condition {conditions}: not an object"));
        };
        for (operator, keys) in conditions {
            if !OPERATORS.contains(&operator.as_str()) {
                return unsupported(format!("the condition operator {operator}"));
            }
            let Some(keys) = keys.as_object() else {
                return unsupported(format!("{operator}: {keys} is not an object of keys"));
            };
            for (key, values) in keys {
                // The key is known (its value in an empty request is read).
                context(&Request::default(), key)?;
                strings(values)?;
            }
        }
    }
    Ok(statements)
}

/// One condition operator on one key.
fn holds(
    operator: &str,
    key: &str,
    values: &[String],
    request: &Request,
) -> Result<bool, Unsupported> {
    let present = context(request, key)?;
    let any = |have: &[String]| have.iter().any(|h| values.contains(h));
    Ok(match operator {
        "StringEquals" => {
            if key == "aws:TagKeys" {
                return unsupported(format!("StringEquals on the multivalued {key}"));
            }
            present.is_some_and(|have| any(&have))
        }
        "StringEqualsIfExists" => present.is_none_or(|have| any(&have)),
        "ArnEquals" => present.is_some_and(|have| {
            have.iter()
                .any(|h| values.iter().any(|pattern| glob(pattern, h)))
        }),
        // An absent or empty set satisfies ForAllValues: the policies pair it
        // with a Null check.
        "ForAllValues:StringEquals" => {
            present.is_none_or(|have| have.iter().all(|h| values.contains(h)))
        }
        "Null" => {
            let absent = match values {
                [v] if v == "true" => true,
                [v] if v == "false" => false,
                _ => {
                    return unsupported(format!(
                        "Null takes \"true\" or \"false\", not {values:?}"
                    ));
                }
            };
            present.is_none() == absent
        }
        other => return unsupported(format!("the condition operator {other}")),
    })
}

/// Whether a statement [`check`] accepted applies to `request`.
fn statement_applies(statement: &Value, request: &Request) -> Result<bool, Unsupported> {
    let actions = strings(&statement["Action"])?;
    let resources = strings(&statement["Resource"])?;
    // Action names are case-insensitive in IAM; ARNs are not.
    let action = request.action.to_ascii_lowercase();
    if !actions
        .iter()
        .any(|a| glob(&a.to_ascii_lowercase(), &action))
        || !resources.iter().any(|r| glob(r, &request.resource))
    {
        return Ok(false);
    }
    let Some(conditions) = statement.get("Condition") else {
        return Ok(true);
    };
    let Some(conditions) = conditions.as_object() else {
        return unsupported(format!("Condition {conditions}: not an object"));
    };
    for (operator, keys) in conditions {
        let Some(keys) = keys.as_object() else {
            return unsupported(format!("{operator}: {keys} is not an object of keys"));
        };
        for (key, values) in keys {
            if !holds(operator, key, &strings(values)?, request)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// What one policy document decides for `request`: an explicit deny wins,
/// then any allow.
///
/// # Errors
/// When the document uses an operator, key or element the evaluator does
/// not implement.
pub fn decide(policy: &Value, request: &Request) -> Result<Decision, Unsupported> {
    let statements = check(policy)?;
    let mut allow = false;
    for statement in statements {
        let applies = statement_applies(statement, request)?;
        match statement["Effect"].as_str() {
            Some("Deny") if applies => return Ok(Decision::ExplicitDeny),
            Some("Allow") if applies => allow = true,
            Some("Allow" | "Deny") => {}
            _ => return unsupported(format!("Effect {}", statement["Effect"])),
        }
    }
    Ok(if allow {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    })
}

/// Whether `policy` allows `request`.
///
/// # Errors
/// As [`decide`].
pub fn allowed(policy: &Value, request: &Request) -> Result<bool, Unsupported> {
    decide(policy, request).map(|d| d == Decision::Allowed)
}

/// What a principal's requests are evaluated against: its identity
/// policies (any may allow) and its permissions boundary (which must allow
/// too), as IAM combines them within one account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    pub identity: Vec<Value>,
    pub boundary: Option<Value>,
}

impl Principal {
    /// A principal with one identity policy and no boundary.
    pub fn with_policy(policy: Value) -> Self {
        Self {
            identity: vec![policy],
            boundary: None,
        }
    }

    /// Its decision: an explicit deny in any document wins; otherwise
    /// allowed when an identity policy allows and the boundary (if any)
    /// does too.
    ///
    /// # Errors
    /// As [`decide`].
    pub fn decide(&self, request: &Request) -> Result<Decision, Unsupported> {
        let mut identity = Decision::ImplicitDeny;
        for policy in &self.identity {
            match decide(policy, request)? {
                Decision::ExplicitDeny => return Ok(Decision::ExplicitDeny),
                Decision::Allowed => identity = Decision::Allowed,
                Decision::ImplicitDeny => {}
            }
        }
        let bounded = match &self.boundary {
            Some(boundary) => decide(boundary, request)?,
            None => Decision::Allowed,
        };
        Ok(match (identity, bounded) {
            (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
            (Decision::Allowed, Decision::Allowed) => Decision::Allowed,
            _ => Decision::ImplicitDeny,
        })
    }
}

#[cfg(test)]
mod lifecycle;

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn request(resource_tags: &[(&str, &str)], request_tags: &[(&str, &str)]) -> Request {
        Request {
            action: "dynamodb:TagResource".into(),
            resource: "arn:aws:dynamodb:us-east-1:1:table/movieapp-a".into(),
            resource_tags: map(resource_tags),
            request_tags: map(request_tags),
            tag_keys: request_tags.iter().map(|(k, _)| (*k).to_owned()).collect(),
            ..Request::default()
        }
    }

    fn one(operator: &str, key: &str, values: &[&str], r: &Request) -> bool {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        holds(operator, key, &values, r).expect("a supported condition")
    }

    #[test]
    fn the_evaluator_reads_the_operators_as_aws_does() {
        let r = request(&[("c", "east")], &[("k", "v")]);
        assert!(one(
            "StringEquals",
            "aws:ResourceTag/c",
            &["west", "east"],
            &r
        ));
        assert!(!one("StringEquals", "aws:ResourceTag/x", &["east"], &r));
        assert!(one(
            "StringEqualsIfExists",
            "aws:ResourceTag/x",
            &["east"],
            &r
        ));
        assert!(!one(
            "StringEqualsIfExists",
            "aws:ResourceTag/c",
            &["west"],
            &r
        ));
        assert!(one(
            "ForAllValues:StringEquals",
            "aws:TagKeys",
            &["k", "j"],
            &r
        ));
        assert!(!one("ForAllValues:StringEquals", "aws:TagKeys", &["j"], &r));
        let bare = request(&[], &[]);
        assert!(one(
            "ForAllValues:StringEquals",
            "aws:TagKeys",
            &["j"],
            &bare
        ));
        assert!(one("Null", "aws:TagKeys", &["true"], &bare));
        assert!(one("Null", "aws:TagKeys", &["false"], &r));
        assert!(one("Null", "aws:ResourceTag/x", &["true"], &r));
        let bounded = Request {
            permissions_boundary: Some("arn:aws:iam::1:policy/b".into()),
            ..bare.clone()
        };
        assert!(one(
            "ArnEquals",
            "iam:PermissionsBoundary",
            &["arn:aws:iam::1:policy/*"],
            &bounded
        ));
        assert!(!one(
            "ArnEquals",
            "iam:PermissionsBoundary",
            &["arn:aws:iam::1:policy/b"],
            &bare
        ));
        assert!(glob(
            "arn:aws:sqs:*:1:movieapp-*",
            "arn:aws:sqs:us-east-1:1:movieapp-q"
        ));
        assert!(!glob(
            "arn:aws:sqs:*:1:movieapp-*",
            "arn:aws:sqs:us-east-1:1:other"
        ));
        assert!(glob("sns:*", "sns:Publish") && !glob("sns:P", "sns:Publish"));
        let policy = serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:TagResource", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/c": "west"}}},
        ]});
        assert_eq!(decide(&policy, &r), Ok(Decision::Allowed));
        assert_eq!(
            decide(&policy, &request(&[("c", "west")], &[])),
            Ok(Decision::ExplicitDeny)
        );
        let lowercase = Request {
            action: "DynamoDB:tagresource".into(),
            ..r.clone()
        };
        assert_eq!(decide(&policy, &lowercase), Ok(Decision::Allowed));
    }

    /// An operator, key or element it does not implement is an error, never
    /// a guess.
    #[test]
    fn what_the_evaluator_does_not_know_is_refused() {
        let r = request(&[("c", "east")], &[("k", "v")]);
        for (condition, needle) in [
            (
                serde_json::json!({"StringLike": {"aws:ResourceTag/c": "e*"}}),
                "StringLike",
            ),
            (
                serde_json::json!({"StringEquals": {"aws:PrincipalTag/c": "e"}}),
                "aws:PrincipalTag/c",
            ),
            (
                serde_json::json!({"StringEquals": {"aws:TagKeys": "k"}}),
                "multivalued",
            ),
            (
                serde_json::json!({"Null": {"aws:TagKeys": "maybe"}}),
                "Null takes",
            ),
        ] {
            let policy = serde_json::json!({"Statement": [
                {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*", "Condition": condition},
            ]});
            let error = decide(&policy, &r).expect_err(needle);
            assert!(error.to_string().contains(needle), "{error}");
        }
        let not_action = serde_json::json!({"Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        ]});
        assert!(decide(&not_action, &r).is_err());
        // Even in a statement no request reaches: the document as a whole
        // is refused.
        let other = serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "sqs:*", "Resource": "*",
             "Condition": {"StringLike": {"aws:ResourceTag/c": "e*"}}},
        ]});
        assert!(decide(&other, &r).is_err());
    }

    #[test]
    fn a_boundary_caps_what_the_identity_policy_allows() {
        let r = request(&[], &[]);
        let all = serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
        ]});
        let sqs_only = serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
        ]});
        assert_eq!(
            Principal::with_policy(all.clone()).decide(&r),
            Ok(Decision::Allowed)
        );
        let bounded = Principal {
            identity: vec![all.clone()],
            boundary: Some(sqs_only.clone()),
        };
        assert_eq!(bounded.decide(&r), Ok(Decision::ImplicitDeny));
        let within = Request {
            action: "sqs:SendMessage".into(),
            ..r
        };
        assert_eq!(bounded.decide(&within), Ok(Decision::Allowed));
        let nothing = Principal {
            identity: vec![sqs_only.clone()],
            boundary: Some(all),
        };
        assert_eq!(
            nothing.decide(&request(&[], &[])),
            Ok(Decision::ImplicitDeny)
        );
    }
}
