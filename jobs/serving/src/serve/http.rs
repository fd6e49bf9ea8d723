//! `cdplake serve`: the look-up API over HTTP (axum on one port). Every request goes to
//! [`crate::serve::api::respond`], the same function the Lambda handler calls; this module only binds the
//! port, refreshes the index in the background and turns replies into HTTP responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::serve::api::{IndexHolder, Permissions, Request, respond};
use cdplake_core::error::{JobError, Result};

/// How `cdplake serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:8080`).
    pub listen: SocketAddr,
    pub permissions: Permissions,
    /// How often the tables' versions are checked for a newer build.
    pub refresh_every: Duration,
}

struct Shared {
    holder: Arc<IndexHolder>,
    permissions: Permissions,
}

/// A bound server, not yet answering (so a caller can learn the port first).
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    refresh_every: Duration,
}

impl Server {
    /// Bind the port for an opened index.
    pub async fn bind(holder: Arc<IndexHolder>, options: &ServeOptions) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| JobError::service("HTTP server", format!("cannot listen on {}: {e}", options.listen)))?;
        Ok(Self {
            listener,
            shared: Arc::new(Shared { holder, permissions: options.permissions }),
            refresh_every: options.refresh_every,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| JobError::service("HTTP server", format!("listening address: {e}")))
    }

    /// Answer requests until `shutdown` completes; the index is refreshed in the background.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
        let holder = self.shared.holder.clone();
        let every = self.refresh_every;
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = holder.refresh().await {
                    tracing::warn!(error = %e, "profile index refresh failed; still serving the previous index");
                }
            }
        });
        let app = Router::new().fallback(handle).with_state(self.shared);
        let served = axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await;
        refresher.abort();
        served.map_err(|e| JobError::service("HTTP server", e))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let request = Request {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        body: body.to_vec(),
    };
    let reply = respond(&shared.holder, shared.permissions, &request).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
