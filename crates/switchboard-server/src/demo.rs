//! The demo chat page served at `/` in development mode, built on the TypeScript client's IIFE
//! bundle (copied from `clients/typescript/dist/` into `assets/` and embedded at compile time).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The page.
const INDEX: &str = include_str!("../assets/index.html");
/// The client bundle (a global `Switchboard`).
const BUNDLE: &str = include_str!("../assets/switchboard.iife.js");

/// `/` and `/switchboard.iife.js`.
pub(crate) fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response() }),
        )
        .route(
            "/switchboard.iife.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], BUNDLE).into_response()
            }),
        )
}
