//! Nobody can take a message's id before it is sent. The facade's ids are name-based (a text,
//! or an `Idempotency-Key`), so whoever can call logging and knows how ids are made can store
//! the id of a text someone will send, with another text: that text is then refused for ever.
//! Logging can require a token, which keeps strangers out, and a deployment secret keys the
//! ids, so even a caller holding the token cannot tell which id a text will get.

use msglog_common::testing::TempDir;
use msglog_proto::logging::{LogRequest, logging_service_client::LoggingServiceClient};
use tonic::{Code, metadata::MetadataValue};
use uuid::Uuid;

use crate::helpers::{
    Client, channel, facade_settings, logging_settings, spawn_facade, spawn_logging_with,
};

const TOKEN: &str = "the-deployment-token-0123456789";
const SECRET: &str = "the-deployment-id-secret-9876543210";

/// The id the facade gives `text` with no secret, as anyone can work it out from the code.
fn public_text_id(text: &str) -> String {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:msglog:message-text");
    Uuid::new_v5(&namespace, text.as_bytes()).to_string()
}

/// The id the facade gives `Idempotency-Key: key` with no secret.
fn public_key_id(key: &str) -> String {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:msglog:idempotency-key");
    Uuid::new_v5(&namespace, key.as_bytes()).to_string()
}

/// Stores `id` with `text` straight in logging, with `token` when given.
async fn squat(
    logging: &str,
    id: &str,
    text: &str,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut client = LoggingServiceClient::new(channel(logging).await);
    let mut request = tonic::Request::new(LogRequest {
        id: id.to_owned(),
        message: text.to_owned(),
    });
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
        );
    }
    client.log_message(request).await.map(drop)
}

/// POSTs `text`, with an `Idempotency-Key` when given: the status and the JSON body.
async fn post(client: &Client, text: &str, key: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = client
        .http
        .post(format!("{}/send_message", client.base))
        .json(&serde_json::json!({ "message": text }));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    crate::helpers::status_and_json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_guessed_id_squatted_in_an_open_logging_refuses_the_real_message() {
    // What the token and the secret are for: without them, the attack works.
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let facade = spawn_facade(facade_settings(&logging.url(), "http://127.0.0.1:9")).await;
    squat(
        &logging.url(),
        &public_text_id("pay Alice 10"),
        "squatted",
        None,
    )
    .await
    .unwrap();
    let (status, body) = post(&Client::new(&facade), "pay Alice 10", None).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn with_a_token_and_an_id_secret_no_guessed_id_can_be_squatted() {
    let dir = TempDir::new("msglog-secrets");
    let token = dir.join("token");
    let secret = dir.join("id-secret");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::write(&secret, SECRET).unwrap();
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--token-file", token.to_str().unwrap()],
    ))
    .await;
    let mut settings = facade_settings(&logging.url(), "http://127.0.0.1:9");
    settings.logging_token_file = Some(token.clone());
    settings.id_secret_file = Some(secret.clone());
    let facade = spawn_facade(settings.clone()).await;

    // A stranger cannot call logging at all.
    let refused = squat(
        &logging.url(),
        &public_text_id("pay Alice 10"),
        "squatted",
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // One who holds the token still cannot guess the ids: the squatted ids are not the ones
    // the facade gives, and the real messages are stored.
    squat(
        &logging.url(),
        &public_text_id("pay Alice 10"),
        "squatted",
        Some(TOKEN),
    )
    .await
    .unwrap();
    squat(
        &logging.url(),
        &public_key_id("order-42"),
        "squatted too",
        Some(TOKEN),
    )
    .await
    .unwrap();
    let client = Client::new(&facade);
    let (status, by_text) = post(&client, "pay Alice 10", None).await;
    assert_eq!(
        (status, by_text["status"].as_str()),
        (200, Some("success")),
        "{by_text}"
    );
    let (status, by_key) = post(&client, "pay Bob 20", Some("order-42")).await;
    assert_eq!(
        (status, by_key["status"].as_str()),
        (200, Some("success")),
        "{by_key}"
    );

    // A second facade of the deployment (or this one restarted) with the same secret gives the
    // same ids: a resend is a duplicate, not a second message.
    let second = spawn_facade(settings).await;
    let second = Client::new(&second);
    let (status, again) = post(&second, "pay Bob 20", Some("order-42")).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("duplicate")),
        "{again}"
    );
    assert_eq!(again["id"], by_key["id"]);
    let (_, again) = post(&second, "pay Alice 10", None).await;
    assert_eq!(again["id"], by_text["id"]);
}
