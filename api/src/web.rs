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
        Some(index) => app_shell(&index.data),
        None => ApiError::Unavailable("the web app is not built; run `npm run build` in web/")
            .into_response(),
    }
}

/// Where `index.html` takes the nonce.
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

/// The app shell with a fresh nonce: in the page (a `csp-nonce` meta tag, which the code editor
/// gives the style elements it creates) and in this response's `style-src`. Inline style
/// attributes stay refused; scripts stay our own files only.
fn app_shell(index: &[u8]) -> Response {
    let nonce = match crate::auth::opaque::generate() {
        Ok(nonce) => nonce,
        Err(err) => return err.into_response(),
    };
    let html = String::from_utf8_lossy(index).replace(NONCE_PLACEHOLDER, &nonce);
    let csp = crate::CSP.replacen(
        "style-src 'self'",
        &format!("style-src 'self' 'nonce-{nonce}'"),
        1,
    );
    let mut response = asset_response("index.html", html.into_bytes(), "no-cache");
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
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
