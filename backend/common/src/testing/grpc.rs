//! gRPC and gRPC-web frames by hand, and the end of a server stream.

use std::time::Duration;

/// A gRPC length-prefixed message frame (uncompressed).
pub fn grpc_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// One frame of a gRPC-web body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcWebFrame {
    /// A message's protobuf bytes.
    Message(Vec<u8>),
    /// The trailer block (`grpc-status:0\r\n...`).
    Trailers(String),
}

/// Takes a gRPC-web body apart as its chunks arrive, in binary (`application/grpc-web`) or
/// text (`application/grpc-web-text`, base64) form.
#[derive(Debug, Default)]
pub struct GrpcWebFrames {
    /// Base64 not yet decoded (text form): always less than one 4-character group.
    text: Vec<u8>,
    /// Whether the body is base64.
    is_text: bool,
    /// Bytes not yet taken as frames.
    bytes: Vec<u8>,
}

impl GrpcWebFrames {
    /// For a binary body.
    pub fn binary() -> Self {
        Self::default()
    }

    /// For a base64 body.
    pub fn text() -> Self {
        Self {
            is_text: true,
            ..Self::default()
        }
    }

    /// Adds a chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        use base64::Engine as _;
        if !self.is_text {
            self.bytes.extend_from_slice(chunk);
            return;
        }
        // Each frame is encoded on its own, so padding may come mid-body; every 4-character
        // group decodes on its own.
        self.text.extend_from_slice(chunk);
        let whole = self.text.len() / 4 * 4;
        for group in self.text[..whole].chunks(4) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(group)
                .unwrap();
            self.bytes.extend(decoded);
        }
        self.text.drain(..whole);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Option<GrpcWebFrame> {
        if self.bytes.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.bytes[1..5].try_into().unwrap()) as usize;
        if self.bytes.len() < 5 + len {
            return None;
        }
        let flag = self.bytes[0];
        let payload = self.bytes[5..5 + len].to_vec();
        self.bytes.drain(..5 + len);
        Some(if flag & 0x80 != 0 {
            GrpcWebFrame::Trailers(String::from_utf8(payload).unwrap())
        } else {
            GrpcWebFrame::Message(payload)
        })
    }

    /// Whether every byte pushed was taken as a frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.text.is_empty()
    }
}

/// The next message of a gRPC-web call's streamed answer (its protobuf bytes), reading the
/// body as it arrives; fails if the call ends first or nothing comes within 10 s.
pub async fn next_grpc_web_message(
    response: &mut reqwest::Response,
    frames: &mut GrpcWebFrames,
) -> Vec<u8> {
    let next = async {
        loop {
            match frames.next_frame() {
                Some(GrpcWebFrame::Message(bytes)) => return bytes,
                Some(GrpcWebFrame::Trailers(trailers)) => panic!("the call ended: {trailers}"),
                None => {
                    let chunk = response.chunk().await.unwrap().expect("the body ended");
                    frames.push(&chunk);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a message within 10 s")
}

/// Reads a server stream to its end and returns the status it ended with (within 10 s); fails
/// if it ended without one.
pub async fn closing_status<T>(stream: &mut tonic::Streaming<T>) -> tonic::Status {
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    });
    ended.await.expect("the stream ends within 10 s")
}
