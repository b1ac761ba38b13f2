//! The gRPC door: `msglog.v1.MessageLog`, over native gRPC (HTTP/2) and gRPC-web (HTTP/1.1),
//! on the same core as the JSON routes: `Send` is `POST /api/messages`, `List` is
//! `GET /api/messages`, `Status` is `GET /api/status`, and `Watch` is served by the live feed.

use msglog_proto::{
    MessageText,
    v1::{
        self, ListRequest, ListResponse, SendRequest, SendResponse, StatusRequest, StatusResponse,
        WatchRequest, message_log_server::MessageLog,
    },
};
use tonic::{Request, Response, Status};

use crate::{
    error::AppError,
    extract::client_ip,
    feed::WatchStream,
    gateway::{Checked, Overview, Page, PageRequest, Sent},
    ids::{IDEMPOTENCY_KEY_RULE, IdempotencyKey},
    logging_client::Logged,
    state::AppState,
};

/// `msglog.v1.MessageLog` over the facade's state and its live feed.
#[derive(Debug, Clone)]
pub(crate) struct MessageLogApi {
    state: AppState,
}

impl MessageLogApi {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// The request id the request-id rule settled (always set by the layer; `-` if not).
fn request_id<T>(request: &Request<T>) -> String {
    msglog_common::request_id::in_headers(request.metadata().as_ref()).to_owned()
}

#[tonic::async_trait]
impl MessageLog for MessageLogApi {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let request_id = request_id(&request);
        self.state
            .write_rate
            .take(client_ip(request.extensions()))
            .map_err(AppError::TooManyRequests)?;
        let SendRequest {
            text,
            idempotency_key,
        } = request.into_inner();
        let key = match idempotency_key.as_str() {
            "" => None,
            key => Some(
                IdempotencyKey::parse(key.as_bytes())
                    .ok_or_else(|| Status::invalid_argument(IDEMPOTENCY_KEY_RULE))?,
            ),
        };
        let text = MessageText::parse(text, self.state.limits.max_message_bytes)
            .map_err(|error| error.to_status("text"))?;
        let sent = crate::gateway::send_message(&self.state, &request_id, key, text).await?;
        Ok(Response::new(sent.into()))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let request_id = request_id(&request);
        let ListRequest {
            cursor,
            limit,
            direction,
        } = request.into_inner();
        let backward = direction == msglog_proto::v1::Direction::Backward as i32;
        let page = PageRequest::new(cursor, limit, backward)?;
        let page = crate::gateway::list_page(&self.state, &request_id, page).await?;
        Ok(Response::new(page.into()))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let request_id = request_id(&request);
        self.state
            .status_rate
            .take(client_ip(request.extensions()))
            .map_err(AppError::TooManyRequests)?;
        let services = crate::gateway::services(&self.state, &request_id).await;
        Ok(Response::new(services.into()))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let client = client_ip(request.extensions());
        let after_seq = request.into_inner().after_seq;
        let watch = crate::gateway::open_watch(&self.state, client, after_seq)?;
        Ok(Response::new(watch))
    }
}

impl From<Sent> for v1::SendResponse {
    fn from(sent: Sent) -> Self {
        Self {
            id: sent.id.to_string(),
            status: match sent.logged {
                Logged::Stored => v1::SendStatus::Stored,
                Logged::Duplicate(_) => v1::SendStatus::Duplicate,
            }
            .into(),
            attempts: sent.attempts,
        }
    }
}

impl From<Page> for v1::ListResponse {
    fn from(Page(page): Page) -> Self {
        Self {
            messages: page.messages.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

impl From<Overview> for v1::StatusResponse {
    fn from(overview: Overview) -> Self {
        let state = |Checked { up, detail }| Some(v1::ServiceState { up, detail });
        Self {
            facade: state(overview.facade),
            logging: state(overview.logging),
            messages: state(overview.messages),
            feed: Some(v1::LiveFeed {
                live: overview.feed.live,
                detail: overview.feed.detail,
                watchers: overview.feed.watchers as u64,
                newest_seq: overview.feed.newest_seq,
            }),
            calls: Some(v1::CallCounts {
                retries: overview.calls.retries,
                errors: overview.calls.errors,
            }),
            max_message_bytes: overview.max_message_bytes,
        }
    }
}
