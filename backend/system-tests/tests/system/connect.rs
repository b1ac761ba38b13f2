//! The gateway in the Connect protocol, as curl speaks it: unary calls as plain `POST`s of
//! JSON (and protobuf), errors as Connect's JSON error body with the HTTP status of its table,
//! `List` and `Status` as `GET`s (the same page as a `POST`, revalidated by its `ETag`), gzip
//! both ways, `Connect-Timeout-Ms`, the content types and methods it refuses, and a `Watch`
//! stream with its end-of-stream message.

use std::{io::Read as _, time::Duration};

use msglog_proto::v1;
use prost::Message as _;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, facade_settings, logging_settings, spawn_facade, spawn_logging_with,
};

const SEND: &str = "/msglog.v1.MessageLog/Send";
const LIST: &str = "/msglog.v1.MessageLog/List";
const STATUS: &str = "/msglog.v1.MessageLog/Status";
const WATCH: &str = "/msglog.v1.MessageLog/Watch";

/// `POST`s `body` as `application/json` to `path`; the status and the JSON answer.
async fn post_json(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.facade.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_take_json_and_protobuf_and_errors_are_connects() {
    let app = TestApp::spawn().await;
    let (status, sent) = post_json(
        &app,
        SEND,
        &json!({ "text": "hello", "idempotencyKey": "k-1" }),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["status"], "SEND_STATUS_STORED");
    assert_eq!(sent["attempts"], 1);
    // The same key again: the same message, not stored twice.
    let (_, again) = post_json(
        &app,
        SEND,
        &json!({ "text": "hello", "idempotencyKey": "k-1" }),
    )
    .await;
    assert_eq!(again["status"], "SEND_STATUS_DUPLICATE");
    assert_eq!(again["id"], sent["id"]);
    // Protobuf both ways.
    let response = app
        .http
        .post(format!("{}{SEND}", app.facade.url()))
        .header("content-type", "application/proto")
        .body(
            v1::SendRequest {
                text: "in protobuf".to_owned(),
                idempotency_key: String::new(),
            }
            .encode_to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let answer = v1::SendResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.status, v1::SendStatus::Stored as i32);
    assert_eq!(app.stored().await, ["hello", "in protobuf"]);

    // Errors: the code in Connect's words, the HTTP status of its table, what was wrong.
    for (path, body, http, code, says) in [
        (
            SEND,
            json!({ "text": "   " }),
            400,
            "invalid_argument",
            "blank",
        ),
        (
            SEND,
            json!({ "text": "other", "idempotencyKey": "k-1" }),
            409,
            "already_exists",
            "already used",
        ),
        (
            SEND,
            json!({ "txet": "a typo" }),
            400,
            "invalid_argument",
            "not valid JSON",
        ),
        (
            LIST,
            json!({ "limit": 1001 }),
            400,
            "invalid_argument",
            "1000",
        ),
        (
            LIST,
            json!({ "cursor": "not a number" }),
            400,
            "invalid_argument",
            "not valid JSON",
        ),
    ] {
        let (status, error) = post_json(&app, path, &body).await;
        assert_eq!(status, http, "{body}: {error}");
        assert_eq!(error["code"], code, "{body}: {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(says)),
            "{body}: {error}"
        );
    }
    assert_eq!(
        app.stored().await.len(),
        2,
        "no refused call stored anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_status_as_gets_answer_as_their_posts_and_say_how_to_cache() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        assert_eq!(app.client().post_message(&format!("m{n}")).await.0, 200);
    }
    let (_, posted) = post_json(&app, LIST, &json!({ "limit": 2 })).await;
    let url = |query: &str| format!("{}{LIST}?{query}", app.facade.url());
    let message = percent_encode(&json!({ "limit": 2 }).to_string());
    let response = app
        .http
        .get(url(&format!("connect=v1&encoding=json&message={message}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let page: Value = response.json().await.unwrap();
    assert_eq!(page, posted, "a GET is the same page as a POST");
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    // Revalidated: the same page is a 304, a changed one is sent again.
    let revalidated = app
        .http
        .get(url(&format!("encoding=json&message={message}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    // Binary, base64url, in the query.
    use base64::Engine as _;
    let binary = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        v1::ListRequest {
            cursor: 0,
            limit: 2,
            direction: 0,
        }
        .encode_to_vec(),
    );
    let response = app
        .http
        .get(url(&format!("encoding=proto&base64=1&message={binary}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = v1::ListResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(page.messages.len(), 2);
    // The status is never stored by a cache; Send is no GET.
    let status = app
        .http
        .get(format!(
            "{}{STATUS}?encoding=json&message=%7B%7D",
            app.facade.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert_eq!(status.headers()["cache-control"], "no-store");
    let send = app
        .http
        .get(format!(
            "{}{SEND}?encoding=json&message=%7B%7D",
            app.facade.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 405);
    assert_eq!(send.headers()["allow"], "POST");
}

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_taken_and_given_as_the_client_says() {
    let app = TestApp::spawn().await;
    let text = "a compressible message ".repeat(40);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, json!({ "text": text }).to_string().as_bytes())
        .unwrap();
    let gzipped = encoder.finish().unwrap();
    let http = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = http
        .post(format!("{}{SEND}", app.facade.url()))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzipped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.stored().await, [text]);
    // A large answer comes gzipped to a client that accepts it, and plain to one that does not.
    let list = |accept: &'static str| {
        http.post(format!("{}{LIST}", app.facade.url()))
            .header("content-type", "application/json")
            .header("accept-encoding", accept)
            .body("{}")
            .send()
    };
    let gzipped = list("gzip").await.unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let mut page = String::new();
    flate2::read::GzDecoder::new(&gzipped.bytes().await.unwrap()[..])
        .read_to_string(&mut page)
        .unwrap();
    assert!(page.contains("a compressible message"), "{page}");
    let plain = list("identity").await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    // Another encoding is not served.
    let response = http
        .post(format!("{}{SEND}", app.facade.url()))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_connect_is_not_is_refused_clearly() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(format!("{}{SEND}", app.facade.url()))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert!(
        response.headers()["accept-post"]
            .to_str()
            .unwrap()
            .contains("application/json")
    );
    for (header, value) in [
        ("connect-timeout-ms", "soon"),
        ("connect-timeout-ms", "12345678901"),
        ("connect-protocol-version", "2"),
    ] {
        let response = app
            .http
            .post(format!("{}{STATUS}", app.facade.url()))
            .header("content-type", "application/json")
            .header(header, value)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{header}: {value}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_argument", "{error}");
    }
    let (status, error) = post_json(&app, "/msglog.v1.MessageLog/Nothing", &json!({})).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (501, Some("unimplemented"))
    );
}

/// A logging that accepts connections and never answers: calls wait until their deadline.
async fn hung_logging() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_ms_bounds_a_call_and_a_stream() {
    let (_hung, logging) = hung_logging().await;
    let facade = spawn_facade(facade_settings(&logging, "http://127.0.0.1:9")).await;
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let response = http
        .post(format!("{}{SEND}", facade.url()))
        .header("content-type", "application/json")
        .header("connect-timeout-ms", "300")
        .body(json!({ "text": "waits" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "deadline_exceeded", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A Watch ends at its timeout, with the deadline in its end-of-stream message.
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let facade = spawn_facade(facade_settings(&logging.url(), "http://127.0.0.1:9")).await;
    let started = std::time::Instant::now();
    let (envelopes, end) = watch(&http, &facade.url(), "300").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!envelopes.is_empty(), "a heartbeat at once");
    assert_eq!(end["error"]["code"], "deadline_exceeded", "{end}");
}

/// A Connect `Watch` (JSON) from the first message, read to its end: its events and its
/// end-of-stream message.
async fn watch(http: &reqwest::Client, base: &str, timeout_ms: &str) -> (Vec<Value>, Value) {
    let request = json!({ "afterSeq": "0" }).to_string();
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(request.len()).unwrap().to_be_bytes());
    body.extend_from_slice(request.as_bytes());
    let response = http
        .post(format!("{base}{WATCH}"))
        .header("content-type", "application/connect+json")
        .header("connect-timeout-ms", timeout_ms)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/connect+json"
    );
    let bytes = tokio::time::timeout(Duration::from_secs(10), response.bytes())
        .await
        .expect("the stream ends")
        .unwrap();
    let (mut events, mut rest) = (Vec::new(), &bytes[..]);
    loop {
        let flags = rest[0];
        let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let message: Value = serde_json::from_slice(&rest[5..5 + length]).unwrap();
        rest = &rest[5 + length..];
        if flags & 0x02 != 0 {
            assert!(rest.is_empty(), "nothing after the end");
            return (events, message);
        }
        events.push(message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_watch_streams_history_and_live_messages_in_envelopes() {
    let app = TestApp::spawn().await;
    assert_eq!(app.client().post_message("before").await.0, 200);
    let base = app.facade.url();
    let http = app.http.clone();
    let reading = tokio::spawn(async move { watch(&http, &base, "1500").await });
    // Stored while the watch is open.
    assert_eq!(app.client().post_message("during").await.0, 200);
    let (events, end) = reading.await.unwrap();
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|event| event["message"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["before", "during"], "{events:?}");
    assert!(
        events[0].get("heartbeat").is_some(),
        "a heartbeat first: {events:?}"
    );
    assert_eq!(end["error"]["code"], "deadline_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_ends_the_call_at_its_deadline() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn_with(|settings| settings.request_timeout_ms = 300).await;
    let addr = app.facade.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Ten bytes of the hundred the headers promise, then nothing.
    let head = format!(
        "POST {SEND} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{\"text\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer before the client gives up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("deadline_exceeded"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(app.stored().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_takes_a_gzipped_request_and_gzips_large_events_for_a_client_that_accepts_it() {
    use std::io::Write as _;
    let app = TestApp::spawn().await;
    let long = "a long message, worth compressing ".repeat(40);
    assert_eq!(app.client().post_message(&long).await.0, 200);
    // The request's envelope compressed, as Connect-Content-Encoding says.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(json!({ "afterSeq": "0" }).to_string().as_bytes())
        .unwrap();
    let compressed = encoder.finish().unwrap();
    let mut body = vec![0x01];
    body.extend_from_slice(&u32::try_from(compressed.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&compressed);
    let response = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .post(format!("{}{WATCH}", app.facade.url()))
        .header("content-type", "application/connect+json")
        .header("connect-content-encoding", "gzip")
        .header("connect-accept-encoding", "gzip")
        .header("connect-timeout-ms", "500")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["connect-content-encoding"], "gzip");
    let bytes = response.bytes().await.unwrap();
    let mut rest = &bytes[..];
    let mut events = Vec::new();
    while !rest.is_empty() {
        let flags = rest[0];
        let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let mut message = rest[5..5 + length].to_vec();
        rest = &rest[5 + length..];
        if flags & 0x02 != 0 {
            break;
        }
        if flags & 0x01 != 0 {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(&message[..])
                .read_to_end(&mut inflated)
                .unwrap();
            message = inflated;
        }
        events.push((flags, serde_json::from_slice::<Value>(&message).unwrap()));
    }
    let (flags, event) = events
        .iter()
        .find(|(_, event)| event.get("message").is_some())
        .expect("the message");
    assert_eq!(event["message"]["text"], long.as_str());
    assert_eq!(*flags, 0x01, "a large event goes compressed");
    let (flags, _) = events
        .iter()
        .find(|(_, event)| event.get("heartbeat").is_some())
        .expect("a heartbeat");
    assert_eq!(*flags, 0, "a small one does not");
}
