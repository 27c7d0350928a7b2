//! Berth's data plane: the MCP endpoint a user pastes, `/t/{tenant}/{server}/mcp`.
//!
//! This release mounts the route and answers with a JSON-RPC "not implemented" error; the
//! Streamable HTTP transport, sessions and backends arrive with the data-plane work.

use actix_web::{HttpResponse, web};
use berth_storage::PgPool;

/// What the data plane needs at run time.
#[derive(Clone, Debug)]
pub struct DataPlaneState {
    /// The system of record.
    pub pool: PgPool,
    /// Public base URL (Host and Origin checks derive from it).
    pub public_url: url::Url,
}

/// Mounts the MCP endpoint.
pub fn configure(state: DataPlaneState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(web::resource("/t/{tenant}/{server}/mcp").app_data(web::Data::new(state)).to(not_implemented));
    }
}

async fn not_implemented() -> HttpResponse {
    HttpResponse::NotImplemented().json(serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32603, "message": "the MCP endpoint is not available in this build of Berth yet"}
    }))
}
