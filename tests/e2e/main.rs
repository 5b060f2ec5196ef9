//! End-to-end tests of the `roomtape` binary: real files, real SQLite, real Ogg/Opus checked by
//! `opusinfo` and decoded by `opusdec`, speech made by `espeak-ng` and `sox`.

mod support;

mod api;
mod archive;
mod bad_input;
mod bench;
mod browser;
mod crash;
mod quality;
mod replay;
mod search;
mod serve;
mod transcribe;
mod translate;
mod webhooks;
