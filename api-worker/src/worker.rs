//! The SQS jobs consumer: long-polls the queue, handles each message with
//! [`jobs::handle_message`], keeps the message invisible while its job runs,
//! deletes what succeeded and schedules a delayed retry for what failed.
//! Redelivery counts towards the queue's `maxReceiveCount`, after which SQS
//! moves the message to the dead-letter queue.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::future::join_all;
use tracing::Instrument;

use crate::config::WorkerSettings;
use crate::jobs::{self, JobError};
use crate::state::AppState;

/// SQS's ceiling for a visibility timeout is 12 hours; retries wait at most 15 minutes.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(900);

pub async fn run(
    state: AppState,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Some(queue_url) = state
        .settings
        .jobs_queue_url
        .as_ref()
        .map(|u| u.as_str().to_owned())
    else {
        bail!(
            "the worker needs the jobs queue: set {}",
            movieapp_model::env::JOBS_QUEUE_URL
        );
    };
    tracing::info!(queue = %queue_url, "worker started");
    tokio::pin!(shutdown);
    loop {
        let receive = state
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(i32::try_from(settings.concurrency.min(10)).unwrap_or(10))
            .wait_time_seconds(i32::try_from(settings.poll_wait.as_secs().min(20)).unwrap_or(20))
            .visibility_timeout(seconds(settings.visibility_timeout))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        let output = tokio::select! {
            () = &mut shutdown => break,
            output = receive => output,
        };
        let messages = match output {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "receiving jobs failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        // A batch runs to its end even when shutdown is asked for meanwhile.
        let handled = join_all(messages.iter().map(|m| {
            let span = tracing::info_span!("job", message_id = m.message_id().unwrap_or_default());
            process(&state, &settings, &queue_url, m).instrument(span)
        }))
        .await;
        let done: Vec<_> = handled.into_iter().flatten().collect();
        if let Err(error) = delete(&state, &queue_url, done).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "deleting handled jobs failed; they will be redelivered"
            );
        }
    }
    tracing::info!("worker stopped");
    Ok(())
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// Handles one message; returns its receipt handle when it can be deleted.
async fn process(
    state: &AppState,
    settings: &WorkerSettings,
    queue_url: &str,
    message: &aws_sdk_sqs::types::Message,
) -> Option<(String, String)> {
    let id = message.message_id().unwrap_or_default().to_owned();
    let receipt = message.receipt_handle()?.to_owned();
    let receives: u32 = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let body = message.body().unwrap_or_default();
    let result = tokio::select! {
        result = jobs::handle_message(state, body) => result,
        () = keep_invisible(state, queue_url, &receipt, settings.visibility_timeout) => unreachable!("never ends"),
    };
    match result {
        Ok(outcome) => {
            tracing::debug!(?outcome, receives, "job handled");
            Some((id, receipt))
        }
        Err(error) => {
            schedule_retry(state, settings, queue_url, &receipt, receives, &error).await;
            None
        }
    }
}

/// When a failed job comes back: a poison message at once (retrying cannot
/// fix it, so it reaches the dead-letter queue after maxReceiveCount
/// receives), a failed job after `--retry-delay` doubled per receive.
pub fn retry_delay(settings: &WorkerSettings, error: &JobError, receives: u32) -> Duration {
    match error {
        JobError::Malformed(_) => Duration::ZERO,
        JobError::Failed(_) => settings
            .retry_delay
            .saturating_mul(1 << receives.saturating_sub(1).min(16))
            .min(MAX_RETRY_DELAY),
    }
}

/// Logs a failed job and makes its message visible again after
/// [`retry_delay`]; shared by this poller and the Lambda SQS handler.
pub async fn schedule_retry(
    state: &AppState,
    settings: &WorkerSettings,
    queue_url: &str,
    receipt: &str,
    receives: u32,
    error: &JobError,
) {
    let delay = retry_delay(settings, error, receives);
    match error {
        JobError::Malformed(reason) => {
            tracing::error!(%reason, receives, "poison message; it goes to the dead-letter queue after maxReceiveCount receives");
        }
        JobError::Failed(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                ?delay,
                receives,
                "job failed; it will be retried"
            );
        }
    }
    let change = state
        .sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds(delay))
        .send()
        .await;
    if let Err(error) = change {
        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "could not schedule the retry");
    }
}

/// Extends the message's visibility every half timeout while its job runs,
/// so a long job is not handed to a second consumer.
async fn keep_invisible(state: &AppState, queue_url: &str, receipt: &str, timeout: Duration) {
    let every = (timeout / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let result = state
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(timeout))
            .send()
            .await;
        match result {
            Ok(_) => tracing::debug!("job still running; visibility extended"),
            Err(error) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "could not extend visibility")
            }
        }
    }
}

async fn delete(
    state: &AppState,
    queue_url: &str,
    done: Vec<(String, String)>,
) -> anyhow::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let entries = done
        .into_iter()
        .enumerate()
        .map(|(i, (_, receipt))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(receipt)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let output = state
        .sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("deleting handled jobs")?;
    if let Some(failed) = output.failed.first() {
        bail!(
            "SQS kept {} handled jobs: {}",
            output.failed.len(),
            failed.message.as_deref().unwrap_or(&failed.code)
        );
    }
    Ok(())
}
