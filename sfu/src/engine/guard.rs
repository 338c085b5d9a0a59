//! Panic isolation: a bug met while handling one peer's input costs that peer, not the worker.

use str0m::Rtc;

use super::event::CloseReason;
use super::peer::Peer;

/// How a step on a peer's `Rtc` failed (see [`guarded`]).
#[derive(Debug)]
pub(super) enum Fault {
    /// str0m refused the peer's input; the `Rtc` is still sound.
    Refused(str0m::RtcError),
    /// The step panicked, with this message; the `Rtc` must not be used again.
    Panicked(String),
}

impl Fault {
    pub(super) fn into_reason(self) -> CloseReason {
        match self {
            Fault::Refused(err) => CloseReason::Failed(err.to_string()),
            Fault::Panicked(message) => CloseReason::Failed(format!("panicked: {message}")),
        }
    }
}

/// Runs `step` on one peer's `Rtc`, turning its errors and panics into a [`Fault`]. A panic is a
/// bug (str0m's or ours), but it must cost one connection, not the worker and every room on it:
/// callers close the peer, so the `Rtc` it happened in is never used again.
pub(super) fn guarded<T>(
    peer: &mut Peer,
    step: impl FnOnce(&mut Rtc) -> Result<T, str0m::RtcError>,
) -> Result<T, Fault> {
    #[cfg(test)]
    let inject = std::mem::take(&mut peer.inject_panic);
    let rtc = &mut peer.rtc;
    let outcome = catch_panic(|| {
        #[cfg(test)]
        if inject {
            panic!("injected by a test");
        }
        step(rtc)
    });
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Fault::Refused(err)),
        Err(message) => {
            tracing::error!(%message, "a peer connection panicked; closing it");
            Err(Fault::Panicked(message))
        }
    }
}

/// Runs `step`, turning a panic into its message. Only for steps whose state is thrown away when
/// they panic (a peer's `Rtc`, a parse).
pub(crate) fn catch_panic<T>(step: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned())
    })
}
