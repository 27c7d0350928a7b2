//! `/tenants/{tenant}/members`: the people who sign in at the tenant's OAuth login page.
//!
//! Add, list, read, change (role, display name, password) and remove. Passwords are hashed
//! with argon2id and never returned. A tenant keeps at least one owner once it has one.

use actix_web::{HttpResponse, http::header, web};
use berth_core::{Error as Invalid, MemberId, Role, Scope};
use berth_storage::members::{self, Member, MemberChanges, NewMember};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{Page, PageQuery, page};
use crate::problem::ApiError;

/// Body of `POST /tenants/{tenant}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateMember {
    /// Email address; compared case-insensitively, stored lowercase.
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) display_name: String,
    /// `owner`, `admin`, `publisher` or `auditor`.
    pub(crate) role: String,
    /// At least 12 characters. Without one the member cannot sign in at the login page (an
    /// external identity provider may still map tokens to them).
    pub(crate) password: Option<String>,
}

/// Body of `PATCH /tenants/{tenant}/members/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchMember {
    pub(crate) display_name: Option<String>,
    pub(crate) role: Option<String>,
    /// Replaces the password.
    pub(crate) password: Option<String>,
}

/// A member (never their password).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberBody {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) role: String,
    /// Whether the member can sign in with a password.
    pub(crate) has_password: bool,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> Self {
        Self {
            id: m.id.as_uuid(),
            email: m.email,
            display_name: m.display_name,
            role: m.role.as_str().to_owned(),
            has_password: m.has_password,
            created_at: m.created_at,
        }
    }
}

fn member_id(raw: &str) -> Result<MemberId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("member"))
}

/// Validates an email address loosely (one `@`, a dot in the domain, no spaces) and lowercases it.
fn email(value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_lowercase();
    let ok = (3..=320).contains(&value.len())
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !domain.starts_with('.')
        });
    if ok { Ok(value) } else { Err(Invalid::invalid("email", "must be an email address").into()) }
}

fn display(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.chars().count() > 200 || value.chars().any(char::is_control) {
        return Err(
            Invalid::invalid("display_name", "must be at most 200 characters without control characters").into()
        );
    }
    Ok(value.to_owned())
}

fn password_hash(password: &str) -> Result<String, ApiError> {
    berth_auth::password::hash_password(password).map_err(|e| Invalid::invalid("password", e.0).into())
}

/// Adds a member.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/members", tag = "members", request_body = CreateMember,
    responses((status = 201, body = MemberBody), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn create(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<CreateMember>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::Admin).await?;
    let email = email(&body.email)?;
    let display_name = display(&body.display_name)?;
    let role = Role::parse(&body.role)?;
    // Hashing takes tens of milliseconds of CPU: keep it off the async workers.
    let hash = match body.password {
        Some(p) => Some(web::block(move || password_hash(&p)).await.map_err(|e| ApiError::Unexpected(e.into()))??),
        None => None,
    };
    let new = NewMember { email: &email, display_name: &display_name, role, password_hash: hash.as_deref() };
    let member = members::insert(&mut conn, &scope, &new).await?;
    tracing::info!(tenant = %scope.slug(), member_id = %member.id, "member added");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/tenants/{}/members/{}", scope.slug(), member.id)))
        .json(MemberBody::from(member)))
}

/// Lists members.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "members", params(PageQuery),
    responses((status = 200, body = Page<MemberBody>), (status = 401), (status = 404)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| c.parse::<MemberId>().map_err(|_| Invalid::invalid("cursor", "not a cursor from this endpoint")))
        .transpose()?;
    let limit = query.limit();
    let rows = members::list(&mut conn, &scope, after, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |m| m.id.to_string(), MemberBody::from)))
}

/// Reads a member.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members/{id}", tag = "members",
    responses((status = 200, body = MemberBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let member = members::get(&mut conn, &scope, member_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(MemberBody::from(member)))
}

/// Changes a member's role, display name or password. Demoting the last owner is refused.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/members/{id}", tag = "members", request_body = PatchMember,
    responses((status = 200, body = MemberBody), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn patch(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<PatchMember>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let body = body.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    let id = member_id(&id)?;
    let role = body.role.as_deref().map(Role::parse).transpose()?;
    let display_name = body.display_name.as_deref().map(display).transpose()?;
    let hash = match body.password {
        Some(p) => Some(web::block(move || password_hash(&p)).await.map_err(|e| ApiError::Unexpected(e.into()))??),
        None => None,
    };
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let current = members::get(&mut tx, &scope, id).await?;
    if current.role == Role::Owner
        && role.is_some_and(|r| r != Role::Owner)
        && members::count_owners(&mut tx, &scope).await? <= 1
    {
        return Err(ApiError::Conflict(
            "the tenant's last owner cannot be demoted; make another member owner first".into(),
        ));
    }
    let changes = MemberChanges { role, display_name: display_name.as_deref(), password_hash: hash.as_deref() };
    let member = members::update(&mut tx, &scope, id, &changes).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), member_id = %member.id, "member changed");
    Ok(HttpResponse::Ok().json(MemberBody::from(member)))
}

/// Removes a member; their OAuth grants and login sessions end with them.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{id}", tag = "members",
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn delete(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    drop(conn);
    let id = member_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let current = members::get(&mut tx, &scope, id).await?;
    if current.role == Role::Owner && members::count_owners(&mut tx, &scope).await? <= 1 {
        return Err(ApiError::Conflict(
            "the tenant's last owner cannot be removed; make another member owner first".into(),
        ));
    }
    members::delete(&mut tx, &scope, id).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), member_id = %id, "member removed");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_loosely_checked() {
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["", "ada", "@example.com", "ada@", "a da@example.com", "ada@@example.com", "ada@.example.com"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
