//! What the logging tests share: a service on a free port, built as `main.rs` builds it.
#![allow(dead_code, clippy::unwrap_used)]

use clap::Parser as _;
use logging_service::{Application, Settings};
use msglog_common::testing::InProcess;
use msglog_proto::logging::{LogRequest, logging_service_client::LoggingServiceClient};
use tonic::transport::Channel;

pub(crate) const ALLOWED_ORIGIN: &str = "http://page.example:8080";

/// A logging service on a free port, built as `main.rs` builds it; stopped when dropped.
pub(crate) struct TestLogging {
    service: InProcess,
}

/// Settings for a test: port 0, memory store, and `extra` flags.
pub(crate) fn settings(extra: &[&str]) -> Settings {
    let mut args = vec![
        "logging-service",
        "--addr",
        "127.0.0.1:0",
        "--store",
        "memory",
    ];
    args.extend_from_slice(extra);
    Settings::try_parse_from(args).unwrap()
}

impl TestLogging {
    pub(crate) async fn start() -> Self {
        Self::start_with(settings(&[
            "--max-message-bytes",
            "1024",
            "--cors-origin",
            ALLOWED_ORIGIN,
        ]))
        .await
    }

    pub(crate) async fn start_with(settings: Settings) -> Self {
        let app = Application::build(&settings).await.unwrap();
        Self {
            service: InProcess::spawn(app.addr(), |stop| app.run_until(stop)),
        }
    }

    /// Stops the service gracefully, checking that it ended well.
    pub(crate) async fn stop(self) {
        self.service.stop().await;
    }

    pub(crate) fn url(&self) -> String {
        self.service.url()
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub(crate) async fn client(&self) -> LoggingServiceClient<Channel> {
        LoggingServiceClient::new(self.channel().await)
    }
}

pub(crate) fn log_request(id: &str, message: &str) -> LogRequest {
    LogRequest {
        id: id.to_owned(),
        message: message.to_owned(),
    }
}

/// Reads a health stream until it reports `wanted` (at most 10 s).
pub(crate) async fn wait_for_health(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: tonic_health::pb::health_check_response::ServingStatus,
) {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let update = stream.message().await.unwrap().expect("the stream goes on");
            if update.status() == wanted {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("health never became {wanted:?}"));
}
