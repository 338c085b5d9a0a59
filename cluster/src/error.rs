//! The cluster's one error type.

/// What can go wrong joining or using the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node id, region or room key that is empty, too long or has characters NATS subjects
    /// and keys cannot carry.
    #[error("invalid {kind} {value:?}: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidName {
        /// What the name is for ("node id", "region", "room").
        kind: &'static str,
        /// The rejected text.
        value: String,
    },
    /// The NATS server could not be reached or refused us.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The configured address.
        url: String,
        /// The client's reason.
        message: String,
    },
    /// JetStream or a key-value bucket refused an operation.
    #[error("NATS {operation} failed: {message}")]
    Nats {
        /// What was being done.
        operation: &'static str,
        /// The client's reason.
        message: String,
    },
    /// A value in a bucket is not what this version writes.
    #[error("unreadable {what} in the cluster's bucket: {message}")]
    Corrupt {
        /// Which kind of value.
        what: &'static str,
        /// The decoder's reason.
        message: String,
    },
    /// Nobody can take the room: no node is serving.
    #[error("no node is serving")]
    NoServingNode,
    /// Placing a room raced with other nodes more times than it should.
    #[error("placing room {0} kept racing with other nodes")]
    Contended(String),
}

impl ClusterError {
    pub(crate) fn nats(operation: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Nats {
            operation,
            message: err.to_string(),
        }
    }
}
