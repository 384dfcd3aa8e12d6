//! REST tests of the query-api: the real command-api writes, the projector
//! catches the read models up from the log, the real query-api answers over HTTP.
#![allow(clippy::unwrap_used)]

mod admin;
mod attachments;
mod attention;
mod authz;
mod avatars;
mod consistency;
mod discovery;
mod epoch;
mod erasure;
mod helpers;
mod invites;
mod one_message;
mod pagination;
mod retention;
mod search;
mod unread;
mod web;
