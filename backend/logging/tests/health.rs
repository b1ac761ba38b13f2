//! gRPC health follows the store: `NOT_SERVING` while the store fails, `SERVING` again once it
//! recovers, seen through the standard `grpc.health.v1.Health/Watch` stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use clap::Parser as _;
use logging_service::{
    Application, Settings,
    store::{
        Store,
        faulty::{Fault, FaultyStore},
        sqlite::SqliteStore,
    },
};
use msglog_common::testing::{InProcess, TempDir};
use msglog_proto::logging::{Empty, LogRequest, logging_service_client::LoggingServiceClient};
use support::wait_for_health;
use tonic::{Code, Streaming, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};

async fn start(store: Arc<dyn Store>) -> (InProcess, Channel) {
    let settings = Settings::try_parse_from([
        "logging-service",
        "--addr",
        "127.0.0.1:0",
        "--store-probe-ms",
        "20",
    ])
    .unwrap();
    let app = Application::build_with_store(&settings, store)
        .await
        .unwrap();
    let service = InProcess::spawn(app.addr(), |stop| app.run_until(stop));
    let channel = Channel::from_shared(service.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    (service, channel)
}

/// The health stream of `service` ("" is the whole server).
async fn watch(channel: &Channel, service: &str) -> Streaming<HealthCheckResponse> {
    HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn request(id: u128, text: &str) -> LogRequest {
    LogRequest {
        id: uuid::Uuid::from_u128(id).to_string(),
        message: text.to_owned(),
    }
}

#[tokio::test]
async fn health_is_not_serving_while_the_store_fails_and_serving_once_it_recovers() {
    let store = Arc::new(FaultyStore::new(Fault::None));
    let (_service, channel) = start(Arc::clone(&store) as Arc<dyn Store>).await;
    let mut client = LoggingServiceClient::new(channel.clone());
    let mut whole = watch(&channel, "").await;
    let mut logging = watch(&channel, "LoggingService").await;
    wait_for_health(&mut whole, ServingStatus::Serving).await;

    client.log_message(request(1, "before")).await.unwrap();
    store.set(Fault::Unavailable);
    let status = client.log_message(request(2, "during")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    wait_for_health(&mut whole, ServingStatus::NotServing).await;
    wait_for_health(&mut logging, ServingStatus::NotServing).await;

    // No call comes in: the probe alone sees the store recover.
    store.set(Fault::None);
    wait_for_health(&mut whole, ServingStatus::Serving).await;
    wait_for_health(&mut logging, ServingStatus::Serving).await;
    client.log_message(request(2, "during")).await.unwrap();
    let listed = client.get_messages(Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.messages, vec!["before", "during"]);
}

/// Makes `path` immutable, or says why the test cannot run (it may only skip outside
/// `scripts/test.sh`): `false` to skip.
fn make_immutable_or_skip(path: &std::path::Path) -> bool {
    match set_immutable(path, true) {
        Ok(()) => true,
        Err(reason) => {
            // scripts/test.sh sets MSGLOG_REQUIRE_ALL_TESTS: there, nothing may be skipped.
            assert!(
                std::env::var_os("MSGLOG_REQUIRE_ALL_TESTS").is_none(),
                "cannot make a file immutable here (chattr +i: {reason})"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIPPED: cannot make a file immutable here (chattr +i: {reason})");
            }
            false
        }
    }
}

/// Sets or clears the immutable attribute of `path`; `Err` with the reason when the file
/// system or the user cannot.
fn set_immutable(path: &std::path::Path, on: bool) -> Result<(), String> {
    let flag = if on { "+i" } else { "-i" };
    match std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

#[tokio::test]
async fn health_follows_a_sqlite_file_that_becomes_unwritable_and_writable_again() {
    let dir = TempDir::new("msglog-health");
    let db = dir.join("messages.sqlite3");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&db, logging_service::store::DedupBy::Id).unwrap());
    let (_service, channel) = start(store).await;
    let mut client = LoggingServiceClient::new(channel.clone());
    let mut health = watch(&channel, "").await;
    client.log_message(request(1, "before")).await.unwrap();

    // The write-ahead log is where commits go; make it (and the file) unwritable, even for
    // root, with the immutable attribute.
    let wal = dir.join("messages.sqlite3-wal");
    if !make_immutable_or_skip(&wal) {
        return;
    }
    set_immutable(&db, true).unwrap();
    let failed = client.log_message(request(2, "during")).await;
    // Health is read before anything is undone (the attributes are cleared even if it fails).
    let reported = tokio::time::timeout(
        Duration::from_secs(10),
        wait_for_health(&mut health, ServingStatus::NotServing),
    )
    .await;
    set_immutable(&db, false).unwrap();
    set_immutable(&wal, false).unwrap();

    let status = failed.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    reported.expect("health turned NOT_SERVING");
    wait_for_health(&mut health, ServingStatus::Serving).await;
    client.log_message(request(2, "during")).await.unwrap();
    let listed = client.get_messages(Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.messages, vec!["before", "during"]);
}

#[tokio::test]
async fn a_database_unwritable_at_start_is_not_serving_and_recovers_once_writable() {
    let dir = TempDir::new("msglog-readonly");
    let db = dir.join("messages.sqlite3");
    // A database with one message, closed cleanly.
    let store = SqliteStore::open(&db, logging_service::store::DedupBy::Id).unwrap();
    store
        .insert(logging_service::store::NewMessage {
            id: uuid::Uuid::from_u128(1),
            text: msglog_proto::MessageText::parse("before".to_owned(), 100).unwrap(),
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);
    if !make_immutable_or_skip(&db) {
        return;
    }
    let opened = SqliteStore::open(&db, logging_service::store::DedupBy::Id);
    let store: Arc<dyn Store> = match opened {
        Ok(store) => Arc::new(store),
        Err(error) => {
            set_immutable(&db, false).unwrap();
            panic!("an unwritable database still opens, for reading: {error:#}");
        }
    };
    let (_service, channel) = start(store).await;
    let mut client = LoggingServiceClient::new(channel.clone());
    let mut health = watch(&channel, "").await;
    // Not serving from the start, before any write was tried; what is stored can be read.
    let first = health.message().await.unwrap().unwrap().status();
    let listed = client.get_messages(Empty {}).await;
    let failed = client.log_message(request(2, "during")).await;
    set_immutable(&db, false).unwrap();
    assert_eq!(first, ServingStatus::NotServing);
    assert_eq!(listed.unwrap().into_inner().messages, ["before"]);
    assert_eq!(failed.unwrap_err().code(), Code::Unavailable);

    // Writable again: the store finds out by itself, with no restart.
    wait_for_health(&mut health, ServingStatus::Serving).await;
    client.log_message(request(2, "during")).await.unwrap();
    let listed = client.get_messages(Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.messages, vec!["before", "during"]);
}
