//! Signed tokens: API access tokens, room join tokens and recorded-media URL tokens (HS256 JWTs).
//!
//! All are signed with the server's secret but carry different audiences, and each verifier
//! accepts only its own: an access token cannot open a room and a join token cannot call the
//! API. Verification pins the algorithm, so `alg: none` and algorithm-confusion tokens fail.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sightline_signaling::{Grants, InterviewRole, RoomId};

use crate::error::ApiError;
use crate::store::users::AccountRole;

/// `iss` of every token we sign.
pub const ISSUER: &str = "sightline";
/// `aud` of access tokens.
pub const ACCESS_AUDIENCE: &str = "sightline-api";
/// `aud` of room join tokens.
pub const JOIN_AUDIENCE: &str = "sightline-rtc";
/// `aud` of recorded-media URLs (a media element cannot send an `Authorization` header, so a
/// short-lived token rides in the URL's query string, which is never logged).
pub const MEDIA_AUDIENCE: &str = "sightline-media";

/// What a media URL token grants: reading one stored object.
#[derive(Debug, Serialize, Deserialize)]
struct MediaClaims {
    iss: String,
    aud: String,
    /// The object key.
    sub: String,
    iat: i64,
    exp: i64,
}

/// Clock skew tolerated when checking `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Who an access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in account.
    User {
        /// User id.
        id: String,
        /// Platform role when the token was issued. Informational only: every decision reads
        /// the stored role (`AuthUser`, `interviews::access`), so a demotion takes effect at once.
        role: AccountRole,
        /// The account's session generation when the token was issued; a password reset or a
        /// deactivation raises it and so ends this session.
        epoch: i64,
    },
    /// A candidate who came in through an invite link, confined to one interview.
    Guest {
        /// Their participant id.
        participant_id: String,
        /// The only interview they may see.
        interview_id: String,
        /// The participant's session generation when the token was issued; a reissued invite
        /// raises it and so ends this session.
        epoch: i64,
    },
}

impl Principal {
    /// How the audit log names whoever acts with this token: a user id, or `guest:` and the
    /// participant id.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { id, .. } => id.clone(),
            Principal::Guest { participant_id, .. } => format!("guest:{participant_id}"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum AccessKind {
    User {
        role: AccountRole,
        #[serde(default)]
        epoch: i64,
    },
    Guest {
        interview: String,
        #[serde(default)]
        epoch: i64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    kind: AccessKind,
}

/// What a join token says: who may enter which room with which grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    /// Issuer.
    pub iss: String,
    /// Audience: [`JOIN_AUDIENCE`].
    pub aud: String,
    /// The participant's identity in the room (participant id).
    pub sub: String,
    /// Name shown to others.
    pub name: String,
    /// The one room this token opens.
    pub room: RoomId,
    /// The participant's role in the interview.
    pub role: InterviewRole,
    /// What they may do there.
    pub grants: Grants,
    /// Set for a candidate's phone: the candidate's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_of: Option<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Unique token id; a join token opens one connection.
    pub jti: String,
    /// The participant's session generation when issued (see [`Principal::Guest`]).
    #[serde(default)]
    pub epoch: i64,
}

/// Who a join token is for.
#[derive(Debug, Clone)]
pub struct JoinSubject<'a> {
    /// Participant id.
    pub participant_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Room (interview) id.
    pub room: RoomId,
    /// Role in the interview; decides the grants.
    pub role: InterviewRole,
    /// Set when the subject is a candidate's phone (the candidate's participant id): the token
    /// then carries the phone's grants, not the role's.
    pub phone_of: Option<&'a str>,
    /// The session generation of the participant (the candidate, for a phone).
    pub epoch: i64,
}

/// Signing and verification keys plus token lifetimes.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl_secs: i64,
    join_ttl_secs: i64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").finish_non_exhaustive()
    }
}

fn validation(audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    validation
}

impl TokenKeys {
    /// Keys from the server secret; lifetimes in seconds.
    pub fn new(secret: &[u8], access_ttl_secs: u64, join_ttl_secs: u64) -> TokenKeys {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl_secs: i64::try_from(access_ttl_secs).unwrap_or(i64::MAX),
            join_ttl_secs: i64::try_from(join_ttl_secs).unwrap_or(i64::MAX),
        }
    }

    /// Lifetime of access tokens, seconds.
    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("token signing: {e}")))
    }

    /// Signs an access token for `principal`, valid from `now` (unix seconds).
    pub fn issue_access(&self, principal: &Principal, now: i64) -> Result<String, ApiError> {
        let (sub, kind) = match principal {
            Principal::User { id, role, epoch } => (
                id.clone(),
                AccessKind::User {
                    role: *role,
                    epoch: *epoch,
                },
            ),
            Principal::Guest {
                participant_id,
                interview_id,
                epoch,
            } => (
                participant_id.clone(),
                AccessKind::Guest {
                    interview: interview_id.clone(),
                    epoch: *epoch,
                },
            ),
        };
        self.sign(&AccessClaims {
            iss: ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            sub,
            iat: now,
            exp: now.saturating_add(self.access_ttl_secs),
            kind,
        })
    }

    /// Checks an access token's signature, algorithm, audience and expiry.
    pub fn verify_access(&self, token: &str) -> Result<Principal, ApiError> {
        let data = jsonwebtoken::decode::<AccessClaims>(
            token,
            &self.decoding,
            &validation(ACCESS_AUDIENCE),
        )
        .map_err(|_| ApiError::Unauthenticated)?;
        let claims = data.claims;
        Ok(match claims.kind {
            AccessKind::User { role, epoch } => Principal::User {
                id: claims.sub,
                role,
                epoch,
            },
            AccessKind::Guest { interview, epoch } => Principal::Guest {
                participant_id: claims.sub,
                interview_id: interview,
                epoch,
            },
        })
    }

    /// Signs a join token for one participant of one room, with the grants of their role.
    pub fn issue_join(
        &self,
        subject: JoinSubject<'_>,
        now: i64,
    ) -> Result<(String, JoinClaims), ApiError> {
        let claims = JoinClaims {
            iss: ISSUER.to_owned(),
            aud: JOIN_AUDIENCE.to_owned(),
            sub: subject.participant_id.to_owned(),
            name: subject.name.to_owned(),
            grants: match subject.phone_of {
                Some(_) => Grants::phone_camera(),
                None => Grants::for_role(subject.role),
            },
            phone_of: subject.phone_of.map(str::to_owned),
            room: subject.room,
            role: subject.role,
            iat: now,
            exp: now.saturating_add(self.join_ttl_secs),
            jti: uuid::Uuid::new_v4().to_string(),
            epoch: subject.epoch,
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// Signs a token that lets a media element read object `key` for `ttl_secs`.
    pub fn issue_media(&self, key: &str, now: i64, ttl_secs: i64) -> Result<String, ApiError> {
        self.sign(&MediaClaims {
            iss: ISSUER.to_owned(),
            aud: MEDIA_AUDIENCE.to_owned(),
            sub: key.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
        })
    }

    /// The object key a media token grants, if it is valid and unexpired.
    pub fn verify_media(&self, token: &str) -> Result<String, ApiError> {
        jsonwebtoken::decode::<MediaClaims>(token, &self.decoding, &validation(MEDIA_AUDIENCE))
            .map(|data| data.claims.sub)
            .map_err(|_| ApiError::Unauthenticated)
    }

    /// Checks a join token and that it was issued for `room`.
    pub fn verify_join(&self, token: &str, room: &RoomId) -> Result<JoinClaims, ApiError> {
        let data =
            jsonwebtoken::decode::<JoinClaims>(token, &self.decoding, &validation(JOIN_AUDIENCE))
                .map_err(|_| ApiError::Unauthenticated)?;
        if &data.claims.room != room {
            return Err(ApiError::Forbidden("this join token is for another room"));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, 900, 300)
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    fn user() -> Principal {
        Principal::User {
            id: "u1".into(),
            role: AccountRole::Interviewer,
            epoch: 3,
        }
    }

    fn join_subject(room: &str, role: InterviewRole) -> JoinSubject<'static> {
        JoinSubject {
            participant_id: "p1",
            name: "Ada",
            room: RoomId(room.to_owned()),
            role,
            phone_of: None,
            epoch: 0,
        }
    }

    #[test]
    fn access_tokens_round_trip() {
        let keys = keys();
        let token = keys.issue_access(&user(), now()).expect("sign");
        assert_eq!(keys.verify_access(&token).expect("valid"), user());
        let guest = Principal::Guest {
            participant_id: "p9".into(),
            interview_id: "i9".into(),
            epoch: 3,
        };
        let token = keys.issue_access(&guest, now()).expect("sign");
        assert_eq!(keys.verify_access(&token).expect("valid"), guest);
    }

    #[test]
    fn expired_wrong_key_and_tampered_tokens_fail() {
        let keys = keys();
        let expired = keys.issue_access(&user(), now() - 2000).expect("sign");
        assert!(keys.verify_access(&expired).is_err());

        let other = TokenKeys::new(b"another-secret-another-secret-xx", 900, 300);
        let foreign = other.issue_access(&user(), now()).expect("sign");
        assert!(keys.verify_access(&foreign).is_err());

        let token = keys.issue_access(&user(), now()).expect("sign");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload = URL_SAFE_NO_PAD.decode(&parts[1]).expect("payload");
        let forged = String::from_utf8(payload)
            .expect("utf8")
            .replace("interviewer", "admin");
        parts[1] = URL_SAFE_NO_PAD.encode(forged);
        assert!(keys.verify_access(&parts.join(".")).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = keys();
        let token = keys.issue_access(&user(), now()).expect("sign");
        let payload = token.split('.').nth(1).expect("payload");
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify_access(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn media_tokens_name_one_object_expire_and_open_nothing_else() {
        let keys = keys();
        let token = keys
            .issue_media("recordings/r1/t1.webm", now(), 60)
            .expect("sign");
        assert_eq!(
            keys.verify_media(&token).expect("valid"),
            "recordings/r1/t1.webm"
        );
        assert!(keys.verify_access(&token).is_err(), "not an access token");
        assert!(keys.verify_join(&token, &RoomId("r1".into())).is_err());
        let expired = keys
            .issue_media("recordings/r1/t1.webm", now() - 600, 60)
            .expect("sign");
        assert!(keys.verify_media(&expired).is_err());
        let access = keys.issue_access(&user(), now()).expect("sign");
        assert!(
            keys.verify_media(&access).is_err(),
            "an access token opens no media"
        );
    }

    #[test]
    fn join_tokens_carry_role_grants_and_open_only_their_room() {
        let keys = keys();
        let (token, claims) = keys
            .issue_join(join_subject("room-a", InterviewRole::Candidate), now())
            .expect("sign");
        assert_eq!(claims.grants, Grants::for_role(InterviewRole::Candidate));
        assert!(claims.exp - claims.iat <= 300);
        let verified = keys
            .verify_join(&token, &RoomId("room-a".into()))
            .expect("same room");
        assert_eq!(verified, claims);
        assert!(matches!(
            keys.verify_join(&token, &RoomId("room-b".into())),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn audiences_do_not_mix() {
        let keys = keys();
        let access = keys.issue_access(&user(), now()).expect("sign");
        assert!(keys.verify_join(&access, &RoomId("room-a".into())).is_err());
        let (join, _) = keys
            .issue_join(join_subject("room-a", InterviewRole::Interviewer), now())
            .expect("sign");
        assert!(keys.verify_access(&join).is_err());
    }

    #[test]
    fn expired_join_token_fails() {
        let keys = keys();
        let (token, _) = keys
            .issue_join(
                join_subject("room-a", InterviewRole::Reviewer),
                now() - 1000,
            )
            .expect("sign");
        assert!(keys.verify_join(&token, &RoomId("room-a".into())).is_err());
    }
}
