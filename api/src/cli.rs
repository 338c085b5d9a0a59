//! Operator commands behind `sightline migrate` and `sightline user create`.

use sightline_config::Settings;

use crate::auth::password;
use crate::error::ApiError;
use crate::store::users::{self, AccountRole};
use crate::store::{self, audit};

/// Applies pending migrations.
pub async fn migrate(settings: &Settings) -> Result<(), ApiError> {
    let db = crate::open_database(settings).await?;
    db.close().await;
    Ok(())
}

/// Creates an account with any role (the way to bootstrap the first admin). Returns the user id.
pub async fn create_user(
    settings: &Settings,
    email: &str,
    display_name: &str,
    role: AccountRole,
    password: String,
) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::field("email", "not an email address"));
    }
    if password.chars().count() < 10 {
        return Err(ApiError::field(
            "password",
            "must be at least 10 characters",
        ));
    }
    let name = display_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field(
            "display_name",
            "must be 1 to 100 characters",
        ));
    }
    let db = crate::open_database(settings).await?;
    let hash = password::hash(password).await?;
    let created = users::insert(db.pool(), &email, name, &hash, role).await;
    let user = match created {
        Ok(user) => user,
        Err(err) if store::is_unique_violation(&err) => {
            db.close().await;
            return Err(ApiError::Conflict {
                code: "email_taken",
                message: format!("an account with {email} already exists"),
            });
        }
        Err(err) => return Err(err.into()),
    };
    // An operator vouches for the address of an account they create.
    users::mark_verified(db.pool(), &user.id, store::now()).await?;
    audit::record(
        db.pool(),
        audit::CLI_ACTOR,
        "user.created",
        &user.id,
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    db.close().await;
    Ok(user.id)
}

/// Sets a new password for the account with `email` (for someone who forgot theirs on a server
/// that sends no email): every session of the account ends. Returns the user id.
pub async fn set_password(
    settings: &Settings,
    email: &str,
    password: String,
) -> Result<String, ApiError> {
    if password.chars().count() < 10 {
        return Err(ApiError::field(
            "password",
            "must be at least 10 characters",
        ));
    }
    let email = email.trim().to_lowercase();
    let db = crate::open_database(settings).await?;
    let Some(user) = users::by_email(db.pool(), &email).await? else {
        db.close().await;
        return Err(ApiError::NotFound);
    };
    let hash = password::hash(password).await?;
    let mut tx = db.pool().begin().await?;
    users::replace_password(&mut tx, &user.id, &hash).await?;
    audit::record(
        &mut *tx,
        audit::CLI_ACTOR,
        "user.password_set",
        &user.id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    db.close().await;
    Ok(user.id)
}

/// Whether any admin account exists yet.
pub async fn has_admin(settings: &Settings) -> Result<bool, ApiError> {
    let db = crate::open_database(settings).await?;
    let found = users::any_admin(db.pool()).await?;
    db.close().await;
    Ok(found)
}
