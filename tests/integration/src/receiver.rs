//! A webhook receiver on 127.0.0.1 for the tests: `POST /<name>` is kept (headers and body);
//! `/fail…` answers 500, anything else 200.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Received {
    pub name: String,
    pub signature: String,
    pub event: String,
    pub body: Vec<u8>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn take(
    State(got): State<Arc<Mutex<Vec<Received>>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    got.lock().unwrap().push(Received {
        name: name.clone(),
        signature: h("cupid-sync-signature"),
        event: h("cupid-sync-event"),
        body: body.to_vec(),
    });
    if name.starts_with("fail") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

impl Receiver {
    /// Starts one on a free port (it stops with the test's runtime).
    pub async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new()
            .route("/{name}", axum::routing::post(take))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, got }
    }

    /// What arrived at `/<name>`, in order.
    pub fn at(&self, name: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.name == name)
            .cloned()
            .collect()
    }
}
