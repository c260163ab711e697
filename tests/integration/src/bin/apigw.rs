//! `apigw --port 18280`: a local stand-in for API Gateway (HTTP API, payload v2) in front of the
//! same handler every function runs. Unlike `cargo lambda watch`, which answers 500 itself when a
//! JSON-typed body is not UTF-8, it passes the raw bytes through as API Gateway does (base64),
//! so a fuzzer reaches our edge with every input. Used by `make api-fuzz`.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cupid_sync::api::routes::{Resolved, resolve};
use cupid_sync::api::{ApiRequest, serve};
use std::sync::Arc;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18280);
    let cfg = match cupid_sync::wiring::start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apigw: {e}");
            std::process::exit(1)
        }
    };
    let token = cfg.require_admin_token().ok();
    let app = Arc::new(
        cupid_sync::wiring::admin_app(&cfg)
            .await
            .expect("the admin app (SCHEDULE_TARGET_ARN / SCHEDULE_ROLE_ARN set?)"),
    );
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let app = app.clone();
        let token = token.clone();
        async move {
            let header = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let query = uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|q| !q.is_empty())
                .map(|q| {
                    let (k, v) = q.split_once('=').unwrap_or((q, ""));
                    let dec = |s: &str| percent_decode(s);
                    (dec(k), dec(v))
                })
                .collect();
            let req = ApiRequest {
                method: method.as_str().to_string(),
                path: uri.path().to_string(),
                query,
                authorization: header("authorization"),
                content_type: header("content-type"),
                body: body.to_vec(),
                ..Default::default()
            };
            // API Gateway only forwards configured routes; anything else is its own 404.
            let function = match resolve(&req.method, &req.path) {
                Resolved::Found(r, _) => r.function,
                _ => return (StatusCode::NOT_FOUND, "{\"message\":\"Not Found\"}").into_response(),
            };
            let (m, p) = (req.method.clone(), req.path.clone());
            // The docs function has its own handler (the pages and the OpenAPI document).
            let resp = if function == "docs" {
                serve(
                    function,
                    token.as_ref(),
                    &cupid_sync::api::openapi::DocsHandler,
                    req,
                )
                .await
            } else {
                serve(function, token.as_ref(), app.as_ref(), req).await
            };
            // One line per request: `make api-fuzz` counts them and any 5xx.
            println!("request {m} {p} {}", resp.status);
            Response::builder()
                .status(resp.status)
                .header("content-type", resp.content_type)
                .body(axum::body::Body::from(resp.body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    };
    let router = axum::Router::new().fallback(handler);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("apigw: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    println!("apigw listening on http://127.0.0.1:{port}");
    let _ = axum::serve(listener, router).await;
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
