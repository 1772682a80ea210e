//! End-to-end tests: the real `livesnap` binary and library against real
//! peers (ffmpeg-made media, an HTTP callback listener, real components).

mod postgres;
mod service;
mod support;

mod api;
mod bad_input;
mod callbacks;
mod capture;
mod cluster;
mod components;
mod console;
mod decode;
mod domains;
mod hardening;
mod http_security;
mod live;
mod on_demand;
mod outbox;
mod parsers;
mod projects;
mod pull;
mod realtime;
mod receiver;
mod s3;
mod sources;
mod store;
mod tenants;
mod tls;
