//! The users table: profiles (`user#<uuid>`) and e-mail claims
//! (`email#<address>`, holding `userId`). Sign-up writes both in one
//! transaction guarded by `attribute_not_exists`, so an address belongs to
//! one account only.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::{AppError, Result};

const ID: &str = "id";
const USER_ID: &str = "userId";
const EMAIL: &str = "email";
const DISPLAY_NAME: &str = "displayName";
const PASSWORD_HASH: &str = "passwordHash";
const CREATED_AT: &str = "createdAt";
const UPDATED_AT: &str = "updatedAt";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An account as a login needs it.
#[derive(Debug)]
pub struct Credentials {
    pub user_id: String,
    pub password_hash: String,
}

/// A new account's fields.
#[derive(Debug)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub now: u64,
}

#[derive(Debug, Clone)]
pub struct UserStore {
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn string(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

fn user_key(id: &str) -> AttributeValue {
    AttributeValue::S(format!("user#{id}"))
}

fn email_key(email: &str) -> AttributeValue {
    AttributeValue::S(format!("email#{email}"))
}

fn profile(id: &str, item: &Item) -> Profile {
    Profile {
        id: id.to_owned(),
        email: string(item, EMAIL).unwrap_or_default(),
        display_name: string(item, DISPLAY_NAME).unwrap_or_default(),
        created_at: rfc3339(number(item, CREATED_AT)),
        updated_at: rfc3339(number(item, UPDATED_AT)),
    }
}

impl UserStore {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { dynamo, table }
    }

    /// Creates the profile and claims the address; `Ok(None)` when the
    /// address already belongs to an account.
    pub async fn create(&self, user: NewUser) -> Result<Option<Profile>> {
        let now = AttributeValue::N(user.now.to_string());
        let put = |item: Vec<(&str, AttributeValue)>| {
            item.into_iter()
                .fold(
                    Put::builder().table_name(&self.table),
                    |put, (name, value)| put.item(name, value),
                )
                .condition_expression("attribute_not_exists(id)")
                .build()
                .map_err(AppError::internal)
        };
        let profile_item = put(vec![
            (ID, user_key(&user.id)),
            (EMAIL, AttributeValue::S(user.email.clone())),
            (DISPLAY_NAME, AttributeValue::S(user.display_name.clone())),
            (PASSWORD_HASH, AttributeValue::S(user.password_hash)),
            (CREATED_AT, now.clone()),
            (UPDATED_AT, now.clone()),
        ])?;
        let claim = put(vec![
            (ID, email_key(&user.email)),
            (USER_ID, AttributeValue::S(user.id.clone())),
            (CREATED_AT, now),
        ])?;
        let result = self
            .dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(profile_item).build())
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .send()
            .await;
        if let Err(error) = result {
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
                && cancelled
                    .cancellation_reasons()
                    .iter()
                    .any(|r| r.code() == Some("ConditionalCheckFailed"))
            {
                return Ok(None);
            }
            return Err(AppError::internal(
                anyhow::Error::new(error).context("creating an account"),
            ));
        }
        Ok(Some(Profile {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            created_at: rfc3339(user.now),
            updated_at: rfc3339(user.now),
        }))
    }

    async fn get_item(&self, key: AttributeValue) -> Result<Option<Item>> {
        let output = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key(ID, key)
            .consistent_read(true)
            .send()
            .await
            .context("reading the users table")?;
        Ok(output.item)
    }

    /// The account holding `email` (normalised), if any.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        let Some(claim) = self.get_item(email_key(email)).await? else {
            return Ok(None);
        };
        let Some(user_id) = string(&claim, USER_ID) else {
            return Ok(None);
        };
        Ok(self
            .get_item(user_key(&user_id))
            .await?
            .map(|item| Credentials {
                password_hash: string(&item, PASSWORD_HASH).unwrap_or_default(),
                user_id,
            }))
    }

    pub async fn profile(&self, id: &str) -> Result<Option<Profile>> {
        Ok(self
            .get_item(user_key(id))
            .await?
            .map(|item| profile(id, &item)))
    }

    /// Sets the display name; `Ok(None)` when the account no longer exists.
    pub async fn rename(
        &self,
        id: &str,
        display_name: String,
        now: u64,
    ) -> Result<Option<Profile>> {
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key(ID, user_key(id))
            .update_expression("SET #name = :name, #updated = :now")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#name", DISPLAY_NAME)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_values(":name", AttributeValue::S(display_name))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(profile(id, &output.attributes.unwrap_or_default()))),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(AppError::internal(
                anyhow::Error::new(error).context("updating a profile"),
            )),
        }
    }
}
