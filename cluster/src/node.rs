//! Typed names and what a node says about itself.

use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// Longest node id, region or room key: NATS keys and subject tokens stay short and readable.
const MAX_NAME: usize = 64;

fn checked(kind: &'static str, value: &str) -> Result<String, ClusterError> {
    let fits = !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        Ok(value.to_owned())
    } else {
        Err(ClusterError::InvalidName {
            kind,
            value: value.chars().take(MAX_NAME + 8).collect(),
        })
    }
}

macro_rules! name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value`: 1 to 64 ASCII letters, digits, `-` or `_` (one NATS token).
            pub fn new(value: &str) -> Result<Self, ClusterError> {
                checked($kind, value).map(Self)
            }

            /// The name as written in keys and subjects.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ClusterError;
            fn try_from(value: String) -> Result<Self, ClusterError> {
                Self::new(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name!(
    /// One Sightline server in a cluster (`[cluster] node_id`).
    NodeId,
    "node id"
);
name!(
    /// Where nodes and interviews are (`[cluster] region`): a room is placed in its interview's
    /// region when a node there serves.
    Region,
    "region"
);
name!(
    /// A room, as the cluster knows it (the interview's id).
    RoomKey,
    "room"
);

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Takes new rooms.
    Serving,
    /// Shutting down: keeps the rooms it has, takes no new ones.
    Draining,
}

/// How busy a node is, as its heartbeat reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Share of the machine's CPU the process used since the last heartbeat (0.0 to 1.0).
    pub cpu: f32,
    /// Rooms hosted.
    pub rooms: u32,
    /// Media connections (a participant has two: publishing and receiving).
    pub peer_connections: u32,
}

impl Load {
    /// One number to compare nodes by, lower is better: CPU dominates (a whole machine busy
    /// weighs as much as 100 rooms), then rooms, then media connections, so idle nodes still
    /// spread rooms.
    pub fn score(&self) -> f64 {
        f64::from(self.cpu.clamp(0.0, 1.0)) * 100.0
            + f64::from(self.rooms)
            + f64::from(self.peer_connections) * 0.1
    }
}

/// What a node puts in the nodes bucket every heartbeat. The bucket forgets it once it is older
/// than the heartbeat lifetime, which is how a dead node disappears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node.
    pub node: NodeId,
    /// Its region.
    pub region: Region,
    /// Serving or draining.
    pub state: NodeState,
    /// How busy it is.
    pub load: Load,
    /// Where other nodes reach its API (`[cluster] advertise_url`), for relaying signaling.
    pub advertise_url: String,
    /// Counts up with every heartbeat of this process; starts again at 1 after a restart.
    pub sequence: u64,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_nats_token() {
        assert!(NodeId::new("eu-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a>", "*", &"x".repeat(65), "é"] {
            assert!(NodeId::new(bad).is_err(), "{bad:?} accepted");
        }
        let parsed: Result<Region, _> = serde_json::from_str("\"a.b\"");
        assert!(parsed.is_err(), "a bad name is refused when read too");
    }

    #[test]
    fn cpu_weighs_most_then_rooms() {
        let idle = Load::default();
        let rooms = Load {
            rooms: 3,
            peer_connections: 12,
            ..Load::default()
        };
        let busy = Load {
            cpu: 0.5,
            ..Load::default()
        };
        assert!(idle.score() < rooms.score());
        assert!(rooms.score() < busy.score());
    }
}
