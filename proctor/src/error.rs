//! The proctoring crate's one error type.

/// What can go wrong in proctoring: the model, the decoding pipeline, or a frame.
#[derive(Debug, thiserror::Error)]
pub enum ProctorError {
    /// The face model could not be loaded or run.
    #[error("face model: {0}")]
    Model(String),
    /// The GStreamer decoding pipeline failed.
    #[error("decoding pipeline: {0}")]
    Pipeline(String),
    /// A frame was not what its caps said.
    #[error("frame: {0}")]
    Frame(String),
    /// A snapshot could not be encoded.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl From<gstreamer::glib::Error> for ProctorError {
    fn from(err: gstreamer::glib::Error) -> Self {
        ProctorError::Pipeline(err.to_string())
    }
}

impl From<gstreamer::glib::BoolError> for ProctorError {
    fn from(err: gstreamer::glib::BoolError) -> Self {
        ProctorError::Pipeline(err.to_string())
    }
}

impl From<gstreamer::StateChangeError> for ProctorError {
    fn from(err: gstreamer::StateChangeError) -> Self {
        ProctorError::Pipeline(err.to_string())
    }
}
