//! The link's one error type.

/// What can go wrong setting up or using a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A certificate, key or CA file could not be read or used.
    #[error("{what} ({path}): {message}")]
    Tls {
        /// Which file it was ("CA", "certificate", "key").
        what: &'static str,
        /// Its path, as configured.
        path: String,
        /// Why it was refused.
        message: String,
    },
    /// The UDP socket could not be bound, or the endpoint set up.
    #[error("QUIC endpoint: {0}")]
    Endpoint(String),
    /// The node does not run the job this token is for (any more): another try will not do
    /// better.
    #[error("the node refused the job: {0}")]
    Refused(String),
    /// The node runs the job but has workers of it waiting already: try again later.
    #[error("the job's node has workers waiting for it")]
    Busy,
    /// The other end could not be reached, or went away.
    #[error("link: {0}")]
    Connection(String),
    /// The other end sent something that is not the protocol.
    #[error("link protocol: {0}")]
    Protocol(String),
}

impl LinkError {
    pub(crate) fn connection(err: impl std::fmt::Display) -> LinkError {
        LinkError::Connection(err.to_string())
    }

    pub(crate) fn protocol(err: impl std::fmt::Display) -> LinkError {
        LinkError::Protocol(err.to_string())
    }
}
