//! JSON documents AWS stores for us — the jobs queue's access policy and its
//! redrive policy — built from the spec and compared by meaning.
//!
//! AWS hands policies back re-serialised (other key order, whitespace,
//! statements reordered, a single value where we sent a list). Comparing
//! strings would rewrite an equivalent policy at every resync, the endless
//! update loop other controllers are known for; so both sides are parsed and
//! normalised, and only a difference in meaning causes a write.

use serde_json::{Map, Value, json};

/// The jobs queue's access policy: the topic may deliver to the queue, nobody
/// else gains anything.
pub fn queue_policy(queue_arn: &str, topic_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowNotificationsTopic",
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } }
        }]
    })
}

/// Whether two policy documents mean the same. Text that is not JSON is
/// compared as text, so a garbled policy is replaced rather than kept.
pub fn equivalent(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => normalise(&a) == normalise(&b),
        _ => a.trim() == b.trim(),
    }
}

/// A canonical form of an IAM-style policy document:
/// - object key order never matters (serde_json maps compare by content);
/// - every list is a set: its members are normalised, sorted and deduplicated,
///   and a one-member list equals its member (`"Action": "x"` ≡ `["x"]`),
///   which also makes `"Statement": {..}` equal `[{..}]`;
/// - scalars compare as strings (IAM reads `10` and `"10"` alike);
/// - `Sid` and `Id` are labels with no effect on evaluation, so they are dropped;
/// - condition keys are case-insensitive (`aws:SourceArn` ≡ `aws:sourcearn`);
/// - `"Principal": "*"` ≡ `{"AWS": "*"}`.
pub fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => normalise_object(map),
        Value::Array(items) => normalise_list(items),
        Value::String(_) | Value::Null => value.clone(),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
    }
}

fn normalise_object(map: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (key, value) in map {
        let normalised = match key.as_str() {
            "Sid" | "Id" => continue,
            "Condition" => normalise_condition(value),
            "Principal" if value.as_str() == Some("*") => json!({ "AWS": "*" }),
            _ => normalise(value),
        };
        out.insert(key.clone(), normalised);
    }
    Value::Object(out)
}

/// `{"ArnEquals": {"aws:SourceArn": ...}}`: operators are case-sensitive,
/// the keys under them are not.
fn normalise_condition(value: &Value) -> Value {
    let Value::Object(operators) = value else {
        return normalise(value);
    };
    let mut out = Map::new();
    for (operator, keys) in operators {
        let normalised = match keys {
            Value::Object(keys) => Value::Object(
                keys.iter()
                    .map(|(key, v)| (key.to_ascii_lowercase(), normalise(v)))
                    .collect(),
            ),
            other => normalise(other),
        };
        out.insert(operator.clone(), normalised);
    }
    Value::Object(out)
}

fn normalise_list(items: &[Value]) -> Value {
    let mut members: Vec<(String, Value)> = items
        .iter()
        .map(normalise)
        .map(|v| (v.to_string(), v))
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    if members.len() == 1 {
        members.pop().map(|(_, v)| v).unwrap_or(Value::Null)
    } else {
        Value::Array(members.into_iter().map(|(_, v)| v).collect())
    }
}

/// An SQS redrive policy: where a job goes after `max_receive_count` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_target_arn: String,
    pub max_receive_count: i64,
}

impl Redrive {
    /// The attribute value SQS expects.
    pub fn to_json(&self) -> String {
        json!({
            "deadLetterTargetArn": self.dead_letter_target_arn,
            "maxReceiveCount": self.max_receive_count,
        })
        .to_string()
    }

    /// Reads an attribute value. SQS has returned `maxReceiveCount` both as a
    /// number and as a string; either is accepted.
    pub fn parse(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        let dead_letter_target_arn = value.get("deadLetterTargetArn")?.as_str()?.to_owned();
        let max_receive_count = match value.get("maxReceiveCount")? {
            Value::Number(n) => n.as_i64()?,
            Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        Some(Self {
            dead_letter_target_arn,
            max_receive_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:movieapp-a-1-jobs";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:movieapp-a-1-notifications";

    fn ours() -> String {
        queue_policy(QUEUE, TOPIC).to_string()
    }

    #[test]
    fn the_same_policy_is_equivalent() {
        assert!(equivalent(&ours(), &ours()));
        let pretty = serde_json::to_string_pretty(&queue_policy(QUEUE, TOPIC)).unwrap_or_default();
        assert!(equivalent(&ours(), &pretty));
    }

    #[test]
    fn reordered_keys_statements_and_list_forms_are_equivalent() {
        let reordered = json!({
            "Statement": [
                {
                    "Condition": { "ArnEquals": { "aws:sourcearn": [TOPIC] } },
                    "Resource": [QUEUE],
                    "Action": ["sqs:SendMessage", "sqs:SendMessage"],
                    "Principal": { "Service": ["sns.amazonaws.com"] },
                    "Effect": "Allow",
                    "Sid": "a-different-label"
                }
            ],
            "Id": "added-by-someone",
            "Version": "2012-10-17"
        });
        assert!(equivalent(&ours(), &reordered.to_string()));

        let two = |first: &str, second: &str| {
            json!({ "Version": "2012-10-17", "Statement": [
                { "Effect": "Allow", "Principal": "*", "Action": first, "Resource": QUEUE },
                { "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": second, "Resource": QUEUE }
            ]})
        };
        let swapped = json!({ "Version": "2012-10-17", "Statement": [
            { "Effect": "Deny", "Principal": "*", "Action": "sqs:DeleteQueue", "Resource": QUEUE },
            { "Resource": QUEUE, "Action": ["sqs:SendMessage"], "Principal": {"AWS": ["*"]}, "Effect": "Allow" }
        ]});
        assert!(equivalent(
            &two("sqs:SendMessage", "sqs:DeleteQueue").to_string(),
            &swapped.to_string()
        ));
    }

    #[test]
    fn a_single_statement_object_equals_a_list_of_one() {
        let policy = queue_policy(QUEUE, TOPIC);
        let single = json!({
            "Version": "2012-10-17",
            "Statement": policy["Statement"][0].clone(),
        });
        assert!(equivalent(&ours(), &single.to_string()));
    }

    #[test]
    fn numbers_and_strings_compare_alike() {
        let a = json!({ "Condition": { "NumericLessThan": { "aws:x": 10 } } });
        let b = json!({ "Condition": { "NumericLessThan": { "aws:x": "10" } } });
        assert_eq!(normalise(&a), normalise(&b));
    }

    #[test]
    fn differences_in_meaning_are_detected() {
        let other_topic = queue_policy(QUEUE, "arn:aws:sns:us-east-1:123456789012:other");
        assert!(!equivalent(&ours(), &other_topic.to_string()));

        let mut extra = queue_policy(QUEUE, TOPIC);
        if let Some(statements) = extra["Statement"].as_array_mut() {
            statements.push(json!({
                "Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE
            }));
        }
        assert!(!equivalent(&ours(), &extra.to_string()));

        let mut denied = queue_policy(QUEUE, TOPIC);
        denied["Statement"][0]["Effect"] = json!("Deny");
        assert!(!equivalent(&ours(), &denied.to_string()));

        // Condition operators are case-sensitive in IAM.
        let mut operator = queue_policy(QUEUE, TOPIC);
        operator["Statement"][0]["Condition"] = json!({ "arnequals": { "aws:SourceArn": TOPIC } });
        assert!(!equivalent(&ours(), &operator.to_string()));

        assert!(!equivalent(&ours(), ""));
        assert!(!equivalent(&ours(), "not json"));
    }

    #[test]
    fn redrive_round_trips_and_accepts_string_counts() {
        let redrive = Redrive {
            dead_letter_target_arn: QUEUE.into(),
            max_receive_count: 5,
        };
        assert_eq!(Redrive::parse(&redrive.to_json()), Some(redrive.clone()));
        let text = format!(r#"{{"maxReceiveCount":"5","deadLetterTargetArn":"{QUEUE}"}}"#);
        assert_eq!(Redrive::parse(&text), Some(redrive));
        assert_eq!(Redrive::parse("{}"), None);
        assert_eq!(
            Redrive::parse(r#"{"deadLetterTargetArn":"x","maxReceiveCount":"five"}"#),
            None
        );
        assert_eq!(Redrive::parse("garbage"), None);
    }
}
