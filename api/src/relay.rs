//! Signaling across nodes. A client may reach any node; when its room runs on another one, the
//! node it reached (the edge) keeps the client's WebSocket and carries the session to the room's
//! host over NATS ([`sightline_cluster::relay`]). Media does not pass here: the host's SDP names
//! the host's own addresses, so the client's peer connections go straight to it.
//!
//! The edge checks the join token before placing the room (a bad token places nothing) and
//! passes the token itself on; the host checks it again and does everything that has state —
//! the one-use rule, the join rates, the session generation — exactly as for a client that
//! reached it directly, so the rules hold cluster-wide because every join of a room meets its
//! host. The edge's WebSocket loop ([`crate::rtc`]) cannot tell a relayed session from a local
//! one: both are a [`Session`].

use serde::{Deserialize, Serialize};
use sightline_cluster::{Dials, Link, NodeId, Service};
use sightline_signaling::protocol::{self, ClientMessage, ServerMessage};
use sightline_signaling::{RoomId, Session};

use crate::rtc::{self, Join, Refused};
use crate::state::AppState;

/// A join carried to the room's host.
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayedJoin {
    /// The room.
    pub room: RoomId,
    /// What the client sent.
    pub join: Join,
}

/// The host's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JoinAnswer {
    /// In: the session is open.
    Admitted {
        /// The member's identity (the edge issues TURN credentials for it).
        identity: String,
    },
    /// Not let in, for the reason a direct join would have been given.
    Refused {
        /// The `error` message's code.
        code: String,
        /// Its text.
        message: String,
    },
}

/// Joins `room` on `node`, which hosts it, and gives this end of the session.
pub async fn connect(
    state: &AppState,
    node: &NodeId,
    room: &RoomId,
    join: Join,
) -> Result<Session, Refused> {
    let Some(cluster) = &state.cluster else {
        return Err(Refused::unavailable());
    };
    let request = RelayedJoin {
        room: room.clone(),
        join,
    };
    match cluster
        .dial::<_, JoinAnswer>(node, Service::Rtc, request)
        .await
    {
        Ok(dialed) => match &dialed.answer {
            JoinAnswer::Admitted { identity } => {
                let identity = identity.clone();
                let link: Link<ServerMessage, ClientMessage> = dialed.open();
                Ok(Session::relayed(identity, link.tx, link.rx))
            }
            JoinAnswer::Refused { code, message } => Err(Refused {
                code: code.clone(),
                message: message.clone(),
            }),
        },
        Err(err) => {
            tracing::warn!(%room, %node, %err, "relaying a join to the room's host");
            Err(Refused::unavailable())
        }
    }
}

/// Takes the joins other nodes relay here, each in a task of its own, until the subscription
/// ends.
pub async fn host(state: AppState, mut dials: Dials<RelayedJoin>) {
    while let Some(dial) = dials.next().await {
        let state = state.clone();
        tokio::spawn(async move {
            let RelayedJoin { room, join } = &dial.request;
            let entered = rtc::enter_here(&state, room, join.clone()).await;
            match entered {
                Ok(session) => {
                    let answer = JoinAnswer::Admitted {
                        identity: session.identity.clone(),
                    };
                    match dial.accept(&answer).await {
                        Ok(link) => carry(session, link).await,
                        Err(err) => {
                            tracing::warn!(%err, "opening a relayed session");
                            session.to_room.closed().await;
                        }
                    }
                }
                Err(refused) => {
                    dial.refuse(&JoinAnswer::Refused {
                        code: refused.code,
                        message: refused.message,
                    })
                    .await;
                }
            }
        });
    }
}

/// Moves one relayed session's messages between the room here and the edge, until either
/// ends; the room then treats it as any dropped connection (the participant may resume).
async fn carry(session: Session, link: Link<ClientMessage, ServerMessage>) {
    let Session {
        to_room,
        mut from_room,
        ..
    } = session;
    let Link { tx, mut rx } = link;
    loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(message) => {
                    // The edge checked it; the limits hold here whatever sent it.
                    let refused = match protocol::check(&message) {
                        Err(err) => Some((err.code().to_owned(), err.to_string())),
                        Ok(()) if !to_room.send(message) => {
                            Some(("busy".to_owned(), "the room is busy; try again".to_owned()))
                        }
                        Ok(()) => None,
                    };
                    if let Some((code, message)) = refused {
                        let error = ServerMessage::Error {
                            code,
                            message,
                            offer_refused: false,
                        };
                        if tx.try_send(error).is_err() {
                            break;
                        }
                    }
                }
                None => break,
            },
            message = from_room.recv() => match message {
                // Waiting here is how a slow edge slows the room's queue to this client, which
                // the room counts as a slow client, as it would a slow socket.
                Some(message) => {
                    if tx.send(message).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    to_room.closed().await;
}
