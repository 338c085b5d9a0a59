//! `/api/admin/*`: account roles, the audit log, the email outbox and the cluster's nodes.
//! Every change here is audited.

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sightline_signaling::RoomId;
use sightline_signaling::protocol::LeaveReason;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry};
use crate::store::outbox::{self, OutboxEntry};
use crate::store::users::{self, AccountRole, UserRow};
use crate::store::webhooks::{self, DeliveryEntry, EndpointRow};
use crate::store::{interviews, phone_pairings};
use crate::webhooks::EVENTS;

const LIST_LIMIT: i64 = 1000;

/// The admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{id}", patch(set_role))
        .route("/api/admin/users/{id}/active", put(set_active))
        .route("/api/admin/audit", get(audit_log))
        .route("/api/admin/outbox", get(outbox_view))
        .route(
            "/api/admin/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route("/api/admin/webhooks/{id}", delete(delete_webhook))
        .route(
            "/api/admin/webhooks/{id}/rotate-secret",
            post(rotate_webhook_secret),
        )
        .route("/api/admin/nodes", get(nodes))
}

/// An account as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub display_name: String,
    /// Platform role.
    pub role: AccountRole,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Whether the account may sign in (an admin can deactivate it).
    pub active: bool,
    /// Whether its address was confirmed.
    pub email_verified: bool,
}

impl TryFrom<UserRow> for UserView {
    type Error = ApiError;

    fn try_from(row: UserRow) -> Result<Self, ApiError> {
        Ok(UserView {
            role: row.role()?,
            created_at: jiff::Timestamp::from_second(row.created_at)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            active: row.deactivated_at.is_none(),
            email_verified: row.email_verified_at.is_some(),
            id: row.id,
            email: row.email,
            display_name: row.display_name,
        })
    }
}

/// Body of `PATCH /api/admin/users/{id}`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    /// The new platform role.
    #[garde(skip)]
    pub role: AccountRole,
}

/// Every account.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    admin.require_admin()?;
    let rows = users::list(state.db.pool(), LIST_LIMIT).await?;
    Ok(Json(
        rows.into_iter()
            .map(UserView::try_from)
            .collect::<Result<_, _>>()?,
    ))
}

/// Grants an account another platform role.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    request_body = SetRoleRequest, params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(admin = %admin.id, target = %id))]
pub async fn set_role(
    State(state): State<AppState>,
    admin: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetRoleRequest>,
) -> Result<Json<UserView>, ApiError> {
    admin.require_admin()?;
    if id == admin.id {
        return Err(ApiError::Conflict {
            code: "own_role",
            message: "admins cannot change their own role (another admin can)".into(),
        });
    }
    let before = users::by_id(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    users::set_role(state.db.pool(), &id, body.role).await?;
    audit::record(
        state.db.pool(),
        &admin.id,
        "user.role_changed",
        &id,
        serde_json::json!({ "from": before.role, "to": body.role.as_str() }),
    )
    .await?;
    tracing::info!(role = %body.role, "role changed");
    let after = users::by_id(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(after.try_into()?))
}

/// Body of `PUT /api/admin/users/{id}/active`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetActiveRequest {
    /// `false` deactivates the account: it cannot sign in, and every session of it ends at
    /// once; `true` lets it sign in again.
    #[garde(skip)]
    pub active: bool,
}

/// Deactivates an account (every session ends at once) or reactivates it.
#[utoipa::path(put, path = "/api/admin/users/{id}/active", tag = "admin",
    security(("bearer" = [])), request_body = SetActiveRequest,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %id))]
pub async fn set_active(
    State(state): State<AppState>,
    admin: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetActiveRequest>,
) -> Result<Json<UserView>, ApiError> {
    admin.require_admin()?;
    if id == admin.id && !body.active {
        return Err(ApiError::Conflict {
            code: "cannot_deactivate_self",
            message: "admins cannot deactivate their own account (another admin can)".into(),
        });
    }
    let at = crate::store::now();
    let mut tx = state.db.pool().begin().await?;
    if !users::set_active(&mut *tx, &id, body.active, at).await? {
        return Err(ApiError::NotFound);
    }
    let participations = if body.active {
        Vec::new()
    } else {
        crate::store::refresh_tokens::revoke_all_for_user(&mut *tx, &id).await?;
        // Join tokens already issued carry the participant rows' session generation, and the
        // paired phones have sessions of their own: both end here.
        interviews::raise_session_epochs_of_user(&mut *tx, &id).await?;
        phone_pairings::revoke_for_user(&mut *tx, &id).await?;
        interviews::open_participations_of_user(
            &mut *tx,
            &id,
            at,
            crate::routes::interviews::JOIN_GRACE_SECS,
        )
        .await?
    };
    let action = if body.active {
        "user.reactivated"
    } else {
        "user.deactivated"
    };
    audit::record(&mut *tx, &admin.id, action, &id, serde_json::json!({})).await?;
    tx.commit().await?;
    tracing::info!(active = body.active, "account activation changed");
    // Whatever they have open ends now too, not when it next asks for something: their place in
    // any room (and their paired phone's), and their editors, which check access again.
    for row in participations {
        let room = RoomId(row.interview_id.clone());
        state
            .remove_participant(&room, &row.id, LeaveReason::SessionEnded)
            .await;
        if row.role == sightline_signaling::InterviewRole::Candidate.as_str() {
            state
                .remove_participant(
                    &room,
                    &crate::pairing::phone_identity(&row.id),
                    LeaveReason::SessionEnded,
                )
                .await;
        }
        state.documents.recheck(&row.interview_id).await;
    }
    let after = users::by_id(state.db.pool(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(after.try_into()?))
}

/// `?action=&actor=&target=&since=&until=` of `GET /api/admin/audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Exactly this action, e.g. `user.deactivated`.
    pub action: Option<String>,
    /// Done by this actor (a user id, `cli`).
    pub actor: Option<String>,
    /// Done to this target (a user, interview or recording id).
    pub target: Option<String>,
    /// At or after this moment (Unix seconds).
    #[param(minimum = 0, maximum = 253_402_300_799_i64)]
    pub since: Option<i64>,
    /// Before this moment (Unix seconds).
    #[param(minimum = 0, maximum = 253_402_300_799_i64)]
    pub until: Option<i64>,
}

/// The latest moment a query may name (the end of year 9999).
const LAST_MOMENT: i64 = 253_402_300_799;

/// A query's moment, if given, within what a timestamp can say.
fn moment(value: Option<i64>, name: &str) -> Result<Option<i64>, ApiError> {
    match value {
        Some(secs) if !(0..=LAST_MOMENT).contains(&secs) => Err(ApiError::field(
            name,
            "Unix seconds between 0 and the end of year 9999",
        )),
        other => Ok(other),
    }
}

/// The newest audit entries (at most 1000), narrowed by what the query names.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    admin: AuthUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    admin.require_admin()?;
    let word = |value: Option<String>, name: &str| -> Result<Option<String>, ApiError> {
        match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            Some(v) if v.len() > 200 => Err(ApiError::field(name, "at most 200 characters")),
            other => Ok(other),
        }
    };
    let filter = audit::Filter {
        action: word(query.action, "action")?,
        actor: word(query.actor, "actor")?,
        target: word(query.target, "target")?,
        since: moment(query.since, "since")?,
        until: moment(query.until, "until")?,
    };
    Ok(Json(
        audit::find(state.db.pool(), &filter, LIST_LIMIT).await?,
    ))
}

/// The email outbox as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    /// Whether this server sends email (`[email] smtp_url`).
    pub enabled: bool,
    /// Messages neither sent nor given up yet.
    pub waiting: i64,
    /// Messages given up after their last attempt.
    pub failed: i64,
    /// The newest messages, unsent ones first (never their content).
    pub messages: Vec<OutboxEntry>,
}

/// The email outbox: what waits, what failed and why.
#[utoipa::path(get, path = "/api/admin/outbox", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = OutboxView), (status = 403, body = ErrorBody)))]
pub async fn outbox_view(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<OutboxView>, ApiError> {
    admin.require_admin()?;
    let pool = state.db.pool();
    let (waiting, failed) = outbox::counts(pool).await?;
    Ok(Json(OutboxView {
        enabled: state.mailer.enabled(),
        waiting,
        failed,
        messages: outbox::recent(pool, LIST_LIMIT).await?,
    }))
}

/// Endpoints a server may have at most.
const MAX_WEBHOOK_ENDPOINTS: usize = 50;

/// A webhook endpoint as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events it receives.
    pub events: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<EndpointRow> for WebhookView {
    fn from(row: EndpointRow) -> WebhookView {
        WebhookView {
            events: row.events.split(' ').map(str::to_owned).collect(),
            created_at: jiff::Timestamp::from_second(row.created_at)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            id: row.id,
            url: row.url,
        }
    }
}

/// A new endpoint, or one whose secret was rotated, with its signing secret (shown here, where
/// the admin copies it to the receiver).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    /// The endpoint.
    pub endpoint: WebhookView,
    /// The key of `Sightline-Signature`'s HMAC-SHA256 (`whsec_…`).
    pub secret: String,
}

/// The endpoints, what waits, what failed and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhooksView {
    /// Every event an endpoint can ask for.
    pub events: Vec<String>,
    /// The registered endpoints.
    pub endpoints: Vec<WebhookView>,
    /// Deliveries neither made nor given up yet.
    pub waiting: i64,
    /// Deliveries given up after their last attempt.
    pub failed: i64,
    /// The newest deliveries, undelivered ones first (never their body).
    pub deliveries: Vec<DeliveryEntry>,
}

/// Body of `POST /api/admin/webhooks`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://…` on a public address (see `[webhooks]` for what else a server allows).
    #[garde(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub url: String,
    /// The events it wants (see `GET /api/admin/webhooks` for the names).
    #[garde(length(min = 1, max = 20), inner(length(min = 1, max = 64)))]
    #[schema(min_items = 1, max_items = 20)]
    pub events: Vec<String>,
}

/// The webhook endpoints and their deliveries.
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = WebhooksView), (status = 403, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<WebhooksView>, ApiError> {
    admin.require_admin()?;
    let pool = state.db.pool();
    let (waiting, failed) = webhooks::counts(pool).await?;
    Ok(Json(WebhooksView {
        events: EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        endpoints: webhooks::endpoints(pool)
            .await?
            .into_iter()
            .map(WebhookView::from)
            .collect(),
        waiting,
        failed,
        deliveries: webhooks::recent(pool, LIST_LIMIT).await?,
    }))
}

/// Registers an endpoint; its signing secret is in the answer.
#[utoipa::path(post, path = "/api/admin/webhooks", tag = "admin", security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookWithSecret), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    admin: AuthUser,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<(axum::http::StatusCode, Json<WebhookWithSecret>), ApiError> {
    admin.require_admin()?;
    let url = state.webhooks.check_url(&body.url)?;
    let mut events: Vec<&str> = Vec::new();
    for event in &body.events {
        let known = EVENTS
            .iter()
            .find(|e| **e == event.as_str())
            .ok_or_else(|| ApiError::field("events", format!("no event is called {event:?}")))?;
        if !events.contains(known) {
            events.push(known);
        }
    }
    let pool = state.db.pool();
    if webhooks::endpoints(pool).await?.len() >= MAX_WEBHOOK_ENDPOINTS {
        return Err(ApiError::Conflict {
            code: "too_many_webhooks",
            message: format!("a server takes at most {MAX_WEBHOOK_ENDPOINTS} webhook endpoints"),
        });
    }
    let row = EndpointRow {
        id: crate::store::new_id(),
        url: url.to_string(),
        events: events.join(" "),
        secret_generation: 0,
        created_by: admin.id.clone(),
        created_at: crate::store::now(),
    };
    let mut tx = pool.begin().await?;
    webhooks::insert_endpoint(&mut *tx, &row).await?;
    audit::record(
        &mut *tx,
        &admin.id,
        "webhook.created",
        &row.id,
        // A receiver's URL may carry its own secret in the query: the log keeps the rest.
        serde_json::json!({ "url": without_query(&url), "events": events }),
    )
    .await?;
    tx.commit().await?;
    let secret = state.webhooks.secret(&row.id, row.secret_generation);
    Ok((
        axum::http::StatusCode::CREATED,
        Json(WebhookWithSecret {
            endpoint: row.into(),
            secret,
        }),
    ))
}

/// `url` without its query and fragment.
fn without_query(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Removes an endpoint and whatever still waits for it.
#[utoipa::path(delete, path = "/api/admin/webhooks/{id}", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    admin: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    admin.require_admin()?;
    let mut tx = state.db.pool().begin().await?;
    if !webhooks::delete_endpoint(&mut *tx, &id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut *tx,
        &admin.id,
        "webhook.deleted",
        &id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Gives an endpoint a new signing secret (the old one stops at once), in the answer.
#[utoipa::path(post, path = "/api/admin/webhooks/{id}/rotate-secret", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = WebhookWithSecret), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    admin: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    admin.require_admin()?;
    let pool = state.db.pool();
    let mut tx = pool.begin().await?;
    if !webhooks::rotate_secret(&mut *tx, &id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut *tx,
        &admin.id,
        "webhook.secret_rotated",
        &id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    let row = webhooks::endpoint(pool, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let secret = state.webhooks.secret(&row.id, row.secret_generation);
    Ok(Json(WebhookWithSecret {
        endpoint: row.into(),
        secret,
    }))
}

/// The servers of a cluster, as `GET /api/admin/nodes` lists them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// Whether this server is part of a cluster (`[cluster] nats_url`); alone, `nodes` is empty.
    pub clustered: bool,
    /// The node that answered.
    pub this_node: Option<String>,
    /// Every node with a live heartbeat, by id.
    pub nodes: Vec<NodeView>,
    /// Rooms placed on a node whose heartbeat has expired: they move to a live node when
    /// someone next enters.
    pub orphaned_rooms: Vec<PlacedRoomView>,
}

/// A room placed on a node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacedRoomView {
    /// The interview (the room is named after it).
    pub interview_id: String,
    /// Its title; `None` if the interview is gone.
    pub title: Option<String>,
    /// The node its placement names.
    pub node: String,
}

/// One node, from its last heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// Its id.
    pub node: String,
    /// Its region.
    pub region: String,
    /// `serving` (takes new rooms) or `draining` (keeps its rooms, takes no new ones).
    pub state: String,
    /// Share of its machine's CPU the server used over the last heartbeat interval (0 to 1).
    pub cpu: f32,
    /// Rooms up on it.
    pub rooms: u32,
    /// Their media connections.
    pub peer_connections: u32,
    /// Where the other nodes reach its API.
    pub advertise_url: String,
    /// RFC 3339, UTC: when its process started.
    pub started_at: String,
    /// The rooms placed on it, by interview id.
    pub placed_rooms: Vec<PlacedRoomView>,
}

/// The cluster's nodes, each from its last heartbeat, with the rooms placed on each.
#[utoipa::path(get, path = "/api/admin/nodes", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ClusterView), (status = 403, body = ErrorBody),
        (status = 503, description = "The cluster's NATS server cannot be reached", body = ErrorBody)))]
pub async fn nodes(
    State(state): State<AppState>,
    admin: AuthUser,
) -> Result<Json<ClusterView>, ApiError> {
    admin.require_admin()?;
    let Some(cluster) = &state.cluster else {
        return Ok(Json(ClusterView {
            clustered: false,
            this_node: None,
            nodes: Vec::new(),
            orphaned_rooms: Vec::new(),
        }));
    };
    let unreachable = |err: sightline_cluster::ClusterError| {
        tracing::warn!(%err, "listing the cluster's nodes and rooms");
        ApiError::Unavailable("the cluster's NATS server cannot be reached")
    };
    let heartbeats = cluster.nodes().await.map_err(unreachable)?;
    let mut placed: Vec<PlacedRoomView> = Vec::new();
    for (room, placement) in cluster.placements().await.map_err(unreachable)? {
        let title = interviews::by_id(state.db.pool(), room.as_str())
            .await?
            .map(|interview| interview.title);
        placed.push(PlacedRoomView {
            interview_id: room.to_string(),
            title,
            node: placement.node.to_string(),
        });
    }
    let nodes: Vec<NodeView> = heartbeats
        .into_iter()
        .map(|h| NodeView {
            placed_rooms: placed
                .iter()
                .filter(|room| room.node == h.node.as_str())
                .cloned()
                .collect(),
            node: h.node.to_string(),
            region: h.region.to_string(),
            state: match h.state {
                sightline_cluster::NodeState::Serving => "serving",
                sightline_cluster::NodeState::Draining => "draining",
            }
            .to_owned(),
            cpu: h.load.cpu,
            rooms: h.load.rooms,
            peer_connections: h.load.peer_connections,
            advertise_url: h.advertise_url,
            started_at: jiff::Timestamp::from_millisecond(h.started_at_ms)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let orphaned_rooms = placed
        .into_iter()
        .filter(|room| !nodes.iter().any(|n| n.node == room.node))
        .collect();
    Ok(Json(ClusterView {
        clustered: true,
        this_node: Some(cluster.node().to_string()),
        nodes,
        orphaned_rooms,
    }))
}
