//! The doors, one module each, over the core they share ([`crate::gateway`]): each parses its
//! requests (validation has already been done by the extractors), calls the core, and encodes
//! what it gives back in its own shape, with its conversions beside it. Every error maps to an
//! answer in [`crate::error`].
//!
//! - [`original`]: the original's routes and answers, exactly;
//! - [`api`]: the page's API, nested under `/api` with answers of its own; [`events`]: its
//!   live feed as server-sent events;
//! - [`grpc`]: the gRPC API, `msglog.v1.MessageLog`; [`connect`]: the same in the Connect
//!   protocol, on the same paths; `envelopes`: their enveloped messages over plain HTTP (a
//!   call's request read, and the one writer of Connect's and gRPC-web's binary `Watch`);
//! - [`ops`]: liveness, metrics, and the JSON 405;
//! - [`listing`]: `GET /get_messages` streamed page by page (the original's door);
//! - `described`: what the API document says of the answers several routes share.

pub(crate) mod api;
pub(crate) mod connect;
mod described;
mod envelopes;
pub(crate) mod events;
pub(crate) mod grpc;
pub(crate) mod listing;
pub(crate) mod ops;
pub(crate) mod original;
