//! Failed logins per account, shared by every replica and Lambda instance:
//! one item per address in the movies table, `login#<SHA-256 of the
//! address>`, which the table's TTL removes once it no longer matters.
//!
//! Each attempt reserves a token *before* the password is checked, in one
//! conditional write, so concurrent guesses cannot all pass the check
//! before any of them is counted; a successful login clears the item. The
//! state is a GCRA "theoretical arrival time" (`tat`, epoch milliseconds):
//! an attempt is allowed while `tat <= now + (burst - 1) × refill`, and
//! moves `tat` on by `refill`. Unknown addresses are limited exactly like
//! known ones, so a lockout tells nothing about whether an account exists.

use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::digest;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use movieapp_model::MOVIES;

use crate::ratelimit::Rate;
use crate::turns::Turns;

const TAT: &str = "tat";

#[derive(Debug)]
pub struct Lockouts {
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    rate: Rate,
    /// Reservations of one address in one process take turns.
    turns: Turns,
}

fn digest_of(email: &str) -> digest::Digest {
    digest::digest(&digest::SHA256, email.as_bytes())
}

fn key(email: &str) -> AttributeValue {
    let hex: String = digest_of(email)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    AttributeValue::S(format!("login#{hex}"))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_millis() -> u64 {
    millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl Lockouts {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, table: String, rate: Rate) -> Self {
        Self {
            dynamo,
            table,
            rate,
            turns: Turns::default(),
        }
    }

    /// Reserves one attempt for `email` (normalised): `Ok(Err(retry_after))`
    /// when the account is locked.
    pub async fn reserve(&self, email: &str) -> anyhow::Result<Result<(), Duration>> {
        let _turn = self.turns.take(email).await;
        let now = now_millis();
        let refill = millis(self.rate.refill).max(1);
        let burst = u64::from(self.rate.burst.max(1));
        let limit = now + (burst - 1) * refill;
        // The item outlives the last moment it could still lock.
        let expires = now / 1000 + (burst * refill) / 1000 + 60;
        let ttl = MOVIES.ttl_attribute.unwrap_or("expiresAt");
        let update = || {
            self.dynamo
                .update_item()
                .table_name(&self.table)
                .key(MOVIES.partition_key.name, key(email))
                .expression_attribute_names("#tat", TAT)
                .expression_attribute_names("#exp", ttl)
                .expression_attribute_values(":exp", n(expires))
        };
        // Idle long enough that the bucket is full: start over from now.
        let fresh = update()
            .update_expression("SET #tat = :next, #exp = :exp")
            .condition_expression("attribute_not_exists(#tat) OR #tat < :now")
            .expression_attribute_values(":next", n(now + refill))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match fresh {
            Ok(_) => return Ok(Ok(())),
            Err(error) if !is_condition_failure(&error) => {
                return Err(anyhow::Error::new(error).context("reserving a login attempt"));
            }
            Err(_) => {}
        }
        let next = update()
            .update_expression("SET #tat = #tat + :refill, #exp = :exp")
            .condition_expression("#tat <= :limit")
            .expression_attribute_values(":refill", n(refill))
            .expression_attribute_values(":limit", n(limit))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match next {
            Ok(_) => Ok(Ok(())),
            Err(error) if is_condition_failure(&error) => {
                let tat = error
                    .as_service_error()
                    .and_then(|e| match e {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item.as_ref(),
                        _ => None,
                    })
                    .and_then(|item| item.get(TAT))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let wait = tat.map_or(refill, |tat| tat.saturating_sub(limit).max(1));
                Ok(Err(Duration::from_millis(wait)))
            }
            Err(error) => Err(anyhow::Error::new(error).context("reserving a login attempt")),
        }
    }

    /// Forgets `email`'s failures (after a successful login).
    pub async fn clear(&self, email: &str) -> anyhow::Result<()> {
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .key(MOVIES.partition_key.name, key(email))
            .send()
            .await
            .context("clearing failed logins")?;
        Ok(())
    }
}

fn is_condition_failure<R>(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        R,
    >,
) -> bool {
    error
        .as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hide_the_address() {
        let AttributeValue::S(k) = key("ada@example.com") else {
            panic!("string key")
        };
        assert!(k.starts_with("login#") && !k.contains("ada"));
        assert_eq!(k.len(), "login#".len() + 64);
        assert_ne!(key("ada@example.com"), key("bob@example.com"));
    }
}
