//! The recorder's one error type.

/// What can go wrong while recording, storing or finishing a recording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// GStreamer could not build or run a pipeline.
    #[error("media pipeline: {0}")]
    Pipeline(String),
    /// A track's codec cannot be recorded without transcoding.
    #[error("codec {0} cannot be recorded")]
    UnsupportedCodec(String),
    /// The object store refused or failed.
    #[error("object store: {0}")]
    Store(String),
    /// A storage key that could leave the store's root.
    #[error("invalid storage key `{0}`")]
    BadKey(String),
    /// A manifest that does not parse.
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    /// A local file operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<gstreamer::glib::Error> for RecorderError {
    fn from(err: gstreamer::glib::Error) -> Self {
        RecorderError::Pipeline(err.to_string())
    }
}

impl From<gstreamer::glib::BoolError> for RecorderError {
    fn from(err: gstreamer::glib::BoolError) -> Self {
        RecorderError::Pipeline(err.to_string())
    }
}

impl From<gstreamer::StateChangeError> for RecorderError {
    fn from(err: gstreamer::StateChangeError) -> Self {
        RecorderError::Pipeline(err.to_string())
    }
}
