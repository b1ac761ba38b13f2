//! A read must not fail for being slow: a large list, asked for by many clients at once with
//! gzip (as browsers ask), is answered to every one of them. The list is streamed page by
//! page, and is the same answer byte for byte; a failure in the middle cuts it off.

use std::sync::Arc;

use logging_service::store::{
    NewMessage, Store as _,
    faulty::{Fault, FaultyStore},
};
use msglog_proto::{
    MessageText,
    api::GetMessagesResponse,
    logging::{Empty, logging_service_client::LoggingServiceClient},
};

use crate::helpers::{
    facade_settings, fill, logging_settings, spawn_facade, spawn_logging_over, spawn_logging_with,
    spawn_messages,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gzip_lists_of_a_large_store_are_all_answered() {
    const MESSAGES: usize = 20_000;
    const CLIENTS: usize = 32;
    const EACH: usize = 3;
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--dedup-by", "id"],
    ))
    .await;
    let messages = spawn_messages().await;
    // About 1.3 MB of JSON per answer.
    fill(
        &logging.url(),
        "a message of a fairly ordinary length, number ",
        MESSAGES,
    )
    .await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let url = format!("{}/get_messages", facade.url());
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..EACH {
                    let response = http
                        .get(&url)
                        .header("accept-encoding", "gzip")
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let encoding = response
                        .headers()
                        .get("content-encoding")
                        .map(|value| value.to_str().unwrap().to_owned());
                    let body = response.bytes().await.unwrap();
                    // What the client reads: the body, decompressed when it came gzipped.
                    let read = if encoding.as_deref() == Some("gzip") {
                        let mut decoded = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::GzDecoder::new(&body[..]),
                            &mut decoded,
                        )
                        .unwrap();
                        decoded
                    } else {
                        body.to_vec()
                    };
                    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&read).into();
                    answers.push((status, encoding, body.len(), digest));
                }
                answers
            })
        })
        .collect();
    // Every list is answered in full: compressed, or (beyond the facade's cap on answers
    // compressed at once) plain; either way, once read, the whole list, the same JSON.
    let expected = serde_json::to_vec(&GetMessagesResponse {
        logged_messages: logged_texts(&logging.url()).await,
        message_from_service: "not implemented yet".to_owned(),
    })
    .unwrap();
    let expected_digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&expected).into();
    let mut failed = Vec::new();
    let (mut compressed, mut plain) = (Vec::new(), Vec::new());
    for client in clients {
        for (status, encoding, bytes, digest) in client.await.unwrap() {
            match (status, encoding.as_deref()) {
                (200, Some("gzip")) if digest == expected_digest => compressed.push(bytes),
                (200, None) if digest == expected_digest => plain.push(bytes),
                _ => failed.push((status, encoding, bytes)),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} lists failed: {:?}",
        failed.len(),
        CLIENTS * EACH,
        &failed[..failed.len().min(5)]
    );
    assert!(!compressed.is_empty(), "no list was compressed");
    assert!(
        plain.iter().all(|&bytes| bytes == expected.len()),
        "plain answers of {plain:?} bytes, the list is {}",
        expected.len()
    );
    assert!(
        compressed
            .iter()
            .all(|&bytes| bytes < 500_000 && bytes > 10_000),
        "compressed answers of {compressed:?} bytes"
    );
}

/// Logging's whole list, in order, straight from `GetMessages`.
async fn logged_texts(logging: &str) -> Vec<String> {
    let channel = tonic::transport::Channel::from_shared(logging.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    LoggingServiceClient::new(channel)
        .get_messages(Empty {})
        .await
        .unwrap()
        .into_inner()
        .messages
}

#[tokio::test]
async fn a_list_of_many_pages_is_the_same_answer_byte_for_byte() {
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--dedup-by", "id"],
    ))
    .await;
    let messages = spawn_messages().await;
    // Two and a half pages, with texts JSON must escape.
    fill(&logging.url(), "\"quoted\" \\ é 🦀 \u{1} line\n", 2_500).await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;

    let response = reqwest::get(format!("{}/get_messages", facade.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.text().await.unwrap();
    let expected = serde_json::to_string(&GetMessagesResponse {
        logged_messages: logged_texts(&logging.url()).await,
        message_from_service: "not implemented yet".to_owned(),
    })
    .unwrap();
    assert_eq!(body.len(), expected.len());
    assert!(
        body == expected,
        "the streamed list differs from the JSON answer"
    );
}

#[tokio::test]
async fn a_store_failing_in_the_middle_of_a_list_cuts_the_answer_off() {
    let store = Arc::new(FaultyStore::new(Fault::None));
    for n in 0..2_500_u128 {
        store
            .insert(NewMessage {
                id: uuid::Uuid::from_u128(n + 1),
                text: MessageText::parse(format!("message {n}"), 100).unwrap(),
            })
            .await
            .unwrap();
    }
    let logging = spawn_logging_over(store.clone()).await;
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let url = format!("{}/get_messages", facade.url());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);

    // The first page reads; the second fails, on every attempt.
    store.set(Fault::PagesAfter(1_000));
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let read = response.text().await;
    assert!(read.is_err(), "a cut-off list read as whole: {read:?}");

    // A store that fails from the first page is the original's JSON 500.
    store.set(Fault::PagesAfter(0));
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("Service error"),
        "{body}"
    );
}
