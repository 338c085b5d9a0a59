//! Serves the browser app built by Vite from `web/dist`.
//!
//! Release builds embed the files in the binary; debug builds read them from disk so a rebuilt
//! web app is picked up without recompiling. Unknown paths outside `/api` get `index.html` so the
//! app's client-side routes (`/interviews/…`, `/join/…`) load directly.

use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "$CARGO_MANIFEST_DIR/../web/dist"]
#[allow_missing = true]
struct Assets;

/// Fallback handler: static files, the app shell, or a JSON 404 under `/api`.
pub async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::NotFound.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let file = path.trim_start_matches('/');
    if !file.is_empty()
        && let Some(asset) = Assets::get(file)
    {
        // Vite puts content hashes in names under assets/, so those never change.
        let cache = if file.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return asset_response(file, asset.data.into_owned(), cache);
    }
    let last = file.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return ApiError::NotFound.into_response();
    }
    match Assets::get("index.html") {
        Some(index) => asset_response("index.html", index.data.into_owned(), "no-cache"),
        None => ApiError::Unavailable("the web app is not built; run `npm run build` in web/")
            .into_response(),
    }
}

fn asset_response(name: &str, bytes: Vec<u8>, cache: &'static str) -> Response {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let content_type = HeaderValue::from_str(mime.as_ref())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}
