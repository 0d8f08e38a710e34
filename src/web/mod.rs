//! The students' web application. The core ([`App::handle`]) maps a
//! [`Request`] to a [`Response`] and knows nothing of the transport; two thin
//! adapters serve it, FastCGI behind Apache and a built-in HTTP server.
//! Starting it all up is left to `server`.

mod app;
pub mod error;
pub mod fastcgi_adapter;
pub mod form;
pub mod http_adapter;
pub mod i18n;
pub mod listen;
pub mod login;
mod pages;
pub mod render;
pub mod request;
pub mod response;
pub mod routes;
pub mod storage;
mod upload;

pub use app::{App, Settings};
pub use request::Request;
pub use response::Response;
