//! The client's `grpc-timeout` is kept by the server itself: a call that overruns it is
//! answered `DEADLINE_EXCEEDED` even by a client that does not keep time, and its work is
//! dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use clap::Parser as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use logging_service::{
    Application, Settings,
    store::faulty::{Fault, FaultyStore},
};
use msglog_common::testing::InProcess;
use msglog_proto::logging::LogRequest;
use prost::Message as _;

#[tokio::test]
async fn a_call_past_its_grpc_timeout_is_answered_deadline_exceeded_by_the_server() {
    let settings = Settings::try_parse_from(["logging-service", "--addr", "127.0.0.1:0"]).unwrap();
    let app = Application::build_with_store(&settings, Arc::new(FaultyStore::new(Fault::Hang)))
        .await
        .unwrap();
    let logging = InProcess::spawn(app.addr(), |stop| app.run_until(stop));

    let request = LogRequest {
        id: "0e4b6c1a-5d7f-4e3a-9b2c-8f1d0a6e7c35".to_owned(),
        message: "never stored".to_owned(),
    }
    .encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(u32::try_from(request.len()).unwrap());
    frame.put_slice(&request);
    // A raw HTTP/2 client that keeps no time of its own: only the server can end the call.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let call = http::Request::post(format!("{}/LoggingService/LogMessage", logging.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "200m")
        .body(Full::new(frame.freeze()))
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(call))
        .await
        .expect("the server answers by itself")
        .unwrap();
    let status = response.headers().get("grpc-status").cloned();
    let collected = response.into_body().collect().await.unwrap();
    let status = status.or_else(|| {
        collected
            .trailers()
            .and_then(|t| t.get("grpc-status").cloned())
    });
    assert_eq!(status.unwrap(), "4", "DEADLINE_EXCEEDED");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
