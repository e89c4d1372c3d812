//! Building and running the application: listeners, pool, greeting listener, servers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::AdminState;
use crate::config::Settings;
use crate::server::{self, Observe};
use crate::state::AppState;

/// In-flight requests get this long after SIGTERM. The chart's terminationGracePeriod
/// (preStop pause + this + margin) must be larger.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

pub struct Application {
    http: TcpListener,
    metrics: TcpListener,
    state: AppState,
}

impl Application {
    /// Bind both ports and prepare the state. Does not need the database to be up.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let http = bind(settings.listen_addr, "LISTEN_ADDR").await?;
        let metrics = bind(settings.metrics_addr, "METRICS_ADDR").await?;
        crate::metrics::handle();
        let settings = Arc::new(settings);
        let pool = crate::db::build_pool(&settings.database);
        let admin = Arc::new(AdminState::new(settings.clone(), pool.clone()));
        let api = Arc::new(crate::api::ApiState::new(settings.clone(), pool.clone()));
        Ok(Self {
            http,
            metrics,
            state: AppState::new(settings, pool, admin, api),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; then readiness fails, the listeners close and
    /// in-flight requests finish (bounded by [`SHUTDOWN_GRACE`]).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            http,
            metrics,
            state,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let listener = tokio::spawn(crate::greeting::listen(
            state.settings.database.clone(),
            state.greeting.clone(),
            stop_rx.clone(),
        ));
        let api = tokio::spawn(crate::api::run_background(
            state.api.clone(),
            stop_rx.clone(),
        ));
        tracing::info!(
            http = %http.local_addr()?,
            metrics = %metrics.local_addr()?,
            environment = state.settings.app_env.as_str(),
            version = env!("CARGO_PKG_VERSION"),
            "greeter is listening"
        );
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let trigger = async {
            shutdown.await;
            tracing::info!("shutdown requested: draining in-flight requests");
            state.start_draining();
            let _ = stop_tx.send(true);
        };
        let public = server::serve(
            http,
            crate::routes::public(state.clone()),
            crate::routes::public_faults(state.clone()),
            stopped(stop_rx.clone()),
            SHUTDOWN_GRACE,
            Observe::Requests {
                label: crate::routes::route_label,
                from_memory: crate::routes::FROM_MEMORY,
            },
            state.settings.network.clone(),
        );
        let internal = server::serve(
            metrics,
            crate::routes::metrics::routes(state.clone()),
            crate::error::json_faults(),
            stopped(stop_rx.clone()),
            SHUTDOWN_GRACE,
            Observe::Nothing,
            // Prometheus scrapes over HTTP/1.1: the metrics port never speaks h2c.
            crate::config::NetworkSettings {
                http2_cleartext: false,
                ..state.settings.network.clone()
            },
        );
        let ((), drained, _) = tokio::join!(trigger, public, internal);
        let _ = listener.await;
        let _ = api.await;
        if drained {
            tracing::info!("all requests finished; exiting");
        } else {
            tracing::warn!("grace period over; exiting with requests still open");
        }
        Ok(())
    }
}

async fn bind(addr: SocketAddr, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({variable})"))
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
