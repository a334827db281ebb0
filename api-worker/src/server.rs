//! Running the subcommands: the HTTP server with graceful shutdown, the
//! worker, the one-shot cache warm-up and the enqueue helper.

use std::future::IntoFuture;
use std::net::SocketAddr;

use anyhow::{Context, bail};

use crate::config::{Cli, Command, EnqueueArgs, LogFormat, ServeArgs, SyncPopularArgs, WorkerArgs};
use crate::jobs::{self, Job, Message};
use crate::state::{AppState, aws_config};
use crate::{admin_app, app, serving, worker};

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Worker(args) => run_worker(args).await,
        Command::SyncPopular(args) => sync_popular(args).await,
        Command::Enqueue(args) => enqueue(args).await,
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let aws = aws_config(&args.settings).await;
    let listen = args.listen();
    let grace = args.http.shutdown_grace;
    let (state, accounts) = serving(args.settings, args.auth, args.http, &aws)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin = match args.admin_addr {
        Some(addr) => {
            let admin = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (admin)"))?;
            tracing::info!(addr = %admin.local_addr()?, "serving /metrics and /readyz (admin)");
            let mut stopped = stop_rx.clone();
            let server =
                axum::serve(admin, admin_app(state.clone())).with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                });
            Some(tokio::spawn(server.into_future()))
        }
        None => {
            tracing::info!(
                "no admin listener ({}): /metrics is not served",
                movieapp_model::env::ADMIN_ADDR
            );
            None
        }
    };
    let mut grace_rx = stop_rx.clone();
    let server = axum::serve(
        listener,
        app(state, Some(accounts)).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let drained = async move {
        let _ = grace_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    drop(stop_rx);
    tokio::select! {
        result = server => result.context("serving HTTP")?,
        () = drained => tracing::warn!(?grace, "in-flight requests did not finish within the grace period"),
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    if args.settings.notifications_topic_arn.is_none() {
        bail!(
            "the worker needs the notifications topic: set {}",
            movieapp_model::env::NOTIFICATIONS_TOPIC_ARN
        );
    }
    let aws = aws_config(&args.settings).await;
    let state = AppState::new(args.settings, Default::default(), &aws)?;
    worker::run(state, args.worker, shutdown_signal()).await
}

async fn sync_popular(args: SyncPopularArgs) -> anyhow::Result<()> {
    let aws = aws_config(&args.settings).await;
    let state = AppState::new(args.settings, Default::default(), &aws)?;
    jobs::handle(&state, &Job::WarmPopular { pages: args.pages }).await?;
    Ok(())
}

async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    match jobs::parse(&args.job)? {
        Message::Job(_) => {}
        Message::Notification => bail!("that is a notification, not a job"),
    }
    let Some(queue_url) = &args.settings.jobs_queue_url else {
        bail!(
            "enqueue needs the jobs queue: set {}",
            movieapp_model::env::JOBS_QUEUE_URL
        );
    };
    let aws = aws_config(&args.settings).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let output = sqs
        .send_message()
        .queue_url(queue_url.as_str())
        .message_body(&args.job)
        .send()
        .await
        .context("sending the job")?;
    tracing::info!(
        message_id = output.message_id.as_deref().unwrap_or_default(),
        "job enqueued"
    );
    Ok(())
}
