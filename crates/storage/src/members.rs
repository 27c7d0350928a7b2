//! Tenant members: the people who sign in at the tenant's login page and consent to clients.
//!
//! Emails are stored lowercase and unique per tenant; passwords only as argon2id PHC strings.

use berth_core::{MemberId, Role, TenantId, TenantScope};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A member of a tenant (never their password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Id.
    pub id: MemberId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Lowercase email address, unique within the tenant.
    pub email: String,
    /// Display name (may be empty).
    pub display_name: String,
    /// Role within the tenant.
    pub role: Role,
    /// Whether the member can sign in with a password.
    pub has_password: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A member to create.
#[derive(Debug, Clone)]
pub struct NewMember<'a> {
    /// Lowercase email.
    pub email: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Role.
    pub role: Role,
    /// argon2id PHC string, if the member signs in with a password.
    pub password_hash: Option<&'a str>,
}

/// Changes to a member; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MemberChanges<'a> {
    /// New role.
    pub role: Option<Role>,
    /// New display name.
    pub display_name: Option<&'a str>,
    /// New argon2id PHC string.
    pub password_hash: Option<&'a str>,
}

struct Row {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    display_name: String,
    role: String,
    has_password: bool,
    created_at: DateTime<Utc>,
}

impl From<Row> for Member {
    fn from(r: Row) -> Self {
        Member {
            id: MemberId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            email: r.email,
            display_name: r.display_name,
            // The column's CHECK constraint admits only known roles; an unknown one (from a
            // newer release) gets the least privileged.
            role: Role::parse(&r.role).unwrap_or(Role::Auditor),
            has_password: r.has_password,
            created_at: r.created_at,
        }
    }
}

/// Adds a member; a taken email is a `Conflict`.
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
pub async fn insert(conn: &mut PgConnection, scope: &TenantScope, new: &NewMember<'_>) -> Result<Member> {
    sqlx::query_as!(
        Row,
        r#"INSERT INTO members (tenant_id, id, email, display_name, role, password_hash)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id, tenant_id, email, display_name, role, password_hash IS NOT NULL AS "has_password!", created_at"#,
        scope.tenant_id().as_uuid(),
        MemberId::new().as_uuid(),
        new.email,
        new.display_name,
        new.role.as_str(),
        new.password_hash
    )
    .fetch_one(conn)
    .await
    .map(Member::from)
    .map_err(|e| Error::on_unique(e, || format!("a member with email {} already exists", new.email)))
}

/// Reads one member.
pub async fn get(conn: &mut PgConnection, scope: &TenantScope, id: MemberId) -> Result<Member> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, tenant_id, email, display_name, role, password_hash IS NOT NULL AS "has_password!", created_at
           FROM members WHERE tenant_id = $1 AND id = $2"#,
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .map(Member::from)
    .ok_or(Error::NotFound("member"))
}

/// Lists members oldest first, after `after` when given.
pub async fn list(
    conn: &mut PgConnection,
    scope: &TenantScope,
    after: Option<MemberId>,
    limit: i64,
) -> Result<Vec<Member>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, tenant_id, email, display_name, role, password_hash IS NOT NULL AS "has_password!", created_at
           FROM members
           WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2)
           ORDER BY id LIMIT $3"#,
        scope.tenant_id().as_uuid(),
        after.map(|a| a.as_uuid()),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Member::from).collect())
}

/// Applies `changes` to a member.
pub async fn update(
    conn: &mut PgConnection,
    scope: &TenantScope,
    id: MemberId,
    changes: &MemberChanges<'_>,
) -> Result<Member> {
    sqlx::query_as!(
        Row,
        r#"UPDATE members SET role = COALESCE($3, role), display_name = COALESCE($4, display_name),
                  password_hash = COALESCE($5, password_hash)
           WHERE tenant_id = $1 AND id = $2
           RETURNING id, tenant_id, email, display_name, role, password_hash IS NOT NULL AS "has_password!", created_at"#,
        scope.tenant_id().as_uuid(),
        id.as_uuid(),
        changes.role.map(Role::as_str),
        changes.display_name,
        changes.password_hash
    )
    .fetch_optional(conn)
    .await?
    .map(Member::from)
    .ok_or(Error::NotFound("member"))
}

/// Removes a member; their login sessions and OAuth grants go with them (by cascade).
pub async fn delete(conn: &mut PgConnection, scope: &TenantScope, id: MemberId) -> Result<()> {
    let done =
        sqlx::query!("DELETE FROM members WHERE tenant_id = $1 AND id = $2", scope.tenant_id().as_uuid(), id.as_uuid())
            .execute(conn)
            .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("member"));
    }
    Ok(())
}

/// How many owners the tenant has (the last one may not be removed or demoted).
pub async fn count_owners(conn: &mut PgConnection, scope: &TenantScope) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM members WHERE tenant_id = $1 AND role = 'owner'"#,
        scope.tenant_id().as_uuid()
    )
    .fetch_one(conn)
    .await?)
}

/// Finds a member by email, with their password hash, to check a login.
pub async fn find_for_login(
    conn: &mut PgConnection,
    scope: &TenantScope,
    email: &str,
) -> Result<Option<(Member, Option<String>)>> {
    let row = sqlx::query!(
        r#"SELECT id, tenant_id, email, display_name, role, password_hash, created_at
           FROM members WHERE tenant_id = $1 AND email = $2"#,
        scope.tenant_id().as_uuid(),
        email
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let member = Member::from(Row {
            id: r.id,
            tenant_id: r.tenant_id,
            email: r.email,
            display_name: r.display_name,
            role: r.role,
            has_password: r.password_hash.is_some(),
            created_at: r.created_at,
        });
        (member, r.password_hash)
    }))
}

/// Finds a member by email (an external identity provider's claim maps to a member this way).
pub async fn find_by_email(conn: &mut PgConnection, scope: &TenantScope, email: &str) -> Result<Option<Member>> {
    Ok(sqlx::query_as!(
        Row,
        r#"SELECT id, tenant_id, email, display_name, role, password_hash IS NOT NULL AS "has_password!", created_at
           FROM members WHERE tenant_id = $1 AND email = $2"#,
        scope.tenant_id().as_uuid(),
        email
    )
    .fetch_optional(conn)
    .await?
    .map(Member::from))
}
