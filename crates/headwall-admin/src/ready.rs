//! `/readyz`: 503 until every listener, the policy, sessions and the audit log are up, and again
//! while draining, so a load balancer stops sending before the gateway stops serving.

use std::sync::atomic::{AtomicU8, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::AdminState;

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

/// The node's lifecycle as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Readiness {
    state: AtomicU8,
}

impl Readiness {
    /// Everything is up: `/readyz` answers 200.
    pub fn set_ready(&self) {
        let _ = self
            .state
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutting down: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.state.store(DRAINING, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::SeqCst) == READY
    }

    fn describe(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            READY => "ready\n",
            DRAINING => "draining\n",
            _ => "starting\n",
        }
    }
}

pub(crate) async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if !state.readiness.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, state.readiness.describe());
    }
    // A degraded shared store keeps the node in service: traffic flows, without identity.
    if state.gateway.sessions().degraded() {
        return (
            StatusCode::OK,
            "ready (session store degraded: identity withheld)\n",
        );
    }
    (StatusCode::OK, state.readiness.describe())
}
