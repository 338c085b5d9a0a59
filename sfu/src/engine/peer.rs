//! Peer connections: creating them, their ICE credentials and candidates, a publisher's offers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{MediaKind, Mid};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Rtc};

use crate::ids::{PeerId, TrackId};

use super::guard::{Fault, guarded};
use super::{Engine, FastMap, INITIAL_ESTIMATE, STATS_INTERVAL, SfuError};

/// What a peer connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Carries the client's own tracks to the server; the client offers.
    Publisher,
    /// Carries other participants' tracks to the client; the server offers.
    Subscriber,
}

/// The worst loss and the latest round trip one connection's RTCP reports gave since its last
/// [`Event::LinkQuality`](super::Event::LinkQuality).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LinkReport {
    pub(super) loss: Option<f32>,
    pub(super) rtt: Option<std::time::Duration>,
}

impl LinkReport {
    pub(super) fn note(&mut self, loss: Option<f32>, rtt: Option<std::time::Duration>) {
        if let Some(loss) = loss {
            self.loss = Some(self.loss.map_or(loss, |worst| worst.max(loss)));
        }
        self.rtt = rtt.or(self.rtt);
    }
}

/// How long media may go out on a connection with no receiver report showing it arrive before
/// the link counts as losing everything. Browsers report video about every second and audio
/// about every five (up to 7.5 s, randomised).
pub(super) const UNANSWERED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether what a connection is sent is answered by receiver reports. Media going out and no
/// report showing any of it arrive (none at all, or reports whose highest sequence number stands
/// still: str0m then gives no loss figure) means it does not arrive, or nothing the client says
/// reaches us: the reports themselves can never say so, and the last rating would stand.
#[derive(Debug, Default)]
pub(super) struct Answers {
    /// Packets sent on each m-line, as of its last statistics.
    sent: HashMap<Mid, u64>,
    /// Since when media went out with no report at all.
    unanswered_since: Option<Instant>,
}

impl Answers {
    /// One m-line's outgoing statistics: `packets` sent so far, and whether a receiver report
    /// came since the last ones.
    pub(super) fn egress(&mut self, mid: Mid, packets: u64, reported: bool, at: Instant) {
        let before = self.sent.insert(mid, packets).unwrap_or(packets);
        if reported {
            self.unanswered_since = None;
        } else if packets > before {
            self.unanswered_since.get_or_insert(at);
        }
    }

    /// Whether media has gone unanswered for [`UNANSWERED_AFTER`] by `now`.
    pub(super) fn unanswered(&self, now: Instant) -> bool {
        self.unanswered_since
            .is_some_and(|since| now.saturating_duration_since(since) >= UNANSWERED_AFTER)
    }
}

#[derive(Debug)]
pub(super) struct Peer {
    pub(super) role: Role,
    pub(super) rtc: Rtc,
    pub(super) ufrag: String,
    pub(super) timeout: Instant,
    /// Whether `timeout` has its entry in the engine's timer heap (see `Engine::timers`);
    /// cleared while the timeout is being served.
    pub(super) armed: bool,
    pub(super) last_input: Instant,
    /// What the RTCP reports of this connection said since it was last reported.
    pub(super) link: LinkReport,
    /// Whether receiver reports still answer what this connection is sent.
    pub(super) answers: Answers,
    /// DTLS completed once; only then does silence mean the client is gone.
    pub(super) connected: bool,
    /// Publisher: the track each m-line carries.
    pub(super) published: FastMap<Mid, TrackId>,
    /// Subscriber: the track each m-line carries.
    pub(super) subscribed: FastMap<Mid, TrackId>,
    pub(super) pending_offer: Option<SdpPendingOffer>,
    /// Subscriber: tracks waiting for an m-line in the next offer.
    pub(super) to_add: Vec<TrackId>,
    /// Subscriber: m-lines whose track is gone, to stop in the next offer.
    pub(super) to_stop: Vec<Mid>,
    /// Subscriber: its m-lines in SDP order. str0m keeps the order to itself (`Media::index` is
    /// private), and recycling needs to know which stopped m-lines are last. Only those can be
    /// recycled: str0m adds a local offer's m-lines after every one it has, so a stopped line
    /// followed by a live one keeps its slot until everything after it is stopped too.
    pub(super) lines: Vec<Line>,
    /// Subscriber: the next offer restarts ICE (the client's network path changed).
    pub(super) restart_ice: bool,
    /// Subscriber: [`Event::RenewSubscriber`] was reported.
    pub(super) renewal_asked: bool,
    /// Subscriber: the mids of its last offer, which its answer must name.
    pub(super) offered_mids: Vec<String>,
    /// In the engine's queue of peers to drain.
    pub(super) queued: bool,
    /// Media was written to it (`write_rtp`) since it was last drained. str0m sends written
    /// media only once time advances, and asks for that with a timeout already due: the drain
    /// serves that timeout first instead of polling to be told.
    pub(super) written: bool,
    /// Makes the next step on this peer panic, to test isolation.
    #[cfg(test)]
    pub(super) inject_panic: bool,
    /// Makes handling this peer's next event panic, to test isolation.
    #[cfg(test)]
    pub(super) inject_event_panic: bool,
}

/// One m-line of a subscriber connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    /// Stopped (port 0) in an offer: it can never carry media again, only be recycled.
    pub(super) stopped: bool,
}

impl Peer {
    /// Arms this peer's (`id`'s) timer at `at`, its `Rtc`'s next timeout: a new entry in the
    /// engine's heap unless the armed one already says so.
    pub(super) fn arm(
        &mut self,
        id: PeerId,
        at: Instant,
        timers: &mut BinaryHeap<Reverse<(Instant, PeerId)>>,
    ) {
        if self.armed && self.timeout == at {
            return;
        }
        self.timeout = at;
        self.armed = true;
        timers.push(Reverse((at, id)));
    }
}

/// str0m's standard extension mappings (Chrome's ids) without transport-wide sequence numbers.
fn without_transport_cc() -> ExtensionMap {
    let mut map = ExtensionMap::empty();
    for (id, ext) in ExtensionMap::standard().iter() {
        if *ext != Extension::TransportSequenceNumber {
            map.set(id, ext.clone());
        }
    }
    map
}

impl Engine {
    fn new_peer(&mut self, id: PeerId, role: Role, now: Instant) -> Result<&mut Peer, SfuError> {
        if self.peers.contains_key(&id) {
            return Err(SfuError::PeerExists(id));
        }
        // Receiver-report loss every second: a subscriber's drives each video track's loss cap,
        // and both connections' tell the room how good the participant's link is.
        let mut builder = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .set_stats_interval(Some(STATS_INTERVAL));
        if role == Role::Subscriber {
            if self.bandwidth_estimation {
                // The estimate of what the server can send this client drives its layer choice.
                builder = builder.enable_bwe(Some(INITIAL_ESTIMATE));
            } else {
                // Nothing would read the client's transport-wide feedback: not offering the
                // extension spares numbering every packet sent and parsing the feedback.
                builder = builder.set_extension_map(without_transport_cc());
            }
        }
        let mut rtc = builder.build(now);
        for candidate in &self.candidates {
            rtc.add_local_candidate(candidate.clone());
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        self.by_ufrag.insert(ufrag.clone(), id);
        let peer = Peer {
            role,
            rtc,
            ufrag,
            timeout: now,
            armed: false,
            last_input: now,
            link: LinkReport::default(),
            answers: Answers::default(),
            connected: false,
            published: FastMap::default(),
            subscribed: FastMap::default(),
            pending_offer: None,
            to_add: Vec::new(),
            to_stop: Vec::new(),
            lines: Vec::new(),
            restart_ice: false,
            renewal_asked: false,
            offered_mids: Vec::new(),
            queued: false,
            written: false,
            #[cfg(test)]
            inject_panic: false,
            #[cfg(test)]
            inject_event_panic: false,
        };
        self.peers.insert(id, peer);
        self.arm(id, now);
        self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer(id))
    }

    /// Accepts a client's offer for its publisher connection, creating the connection on the first
    /// offer and renegotiating it on later ones (a screen share added); returns the answer. A
    /// refused first offer leaves no connection behind.
    pub fn publisher_offer(
        &mut self,
        id: PeerId,
        offer: SdpOffer,
        now: Instant,
    ) -> Result<SdpAnswer, SfuError> {
        let existing = self.peers.contains_key(&id);
        let peer = match self.peers.get_mut(&id) {
            Some(peer) if peer.role == Role::Publisher => peer,
            Some(_) => return Err(SfuError::WrongRole(id, Role::Publisher)),
            None => self.new_peer(id, Role::Publisher, now)?,
        };
        let answer = match guarded(peer, |rtc| rtc.sdp_api().accept_offer(offer)) {
            Ok(answer) => answer,
            // A refused re-offer leaves the connection as it was; a refused first offer leaves
            // none (signaling never heard of it, so no `Closed` either).
            Err(Fault::Refused(err)) => {
                if !existing {
                    self.drop_peer(id);
                }
                return Err(err.into());
            }
            Err(fault @ Fault::Panicked(_)) => {
                if !existing {
                    self.drop_peer(id);
                    return Err(SfuError::PeerFailed(id));
                }
                return Err(self.fail(id, fault));
            }
        };
        // A re-offer may restart ICE (new credentials on both sides).
        self.follow_ice_credentials(id);
        // A re-offer that stops an m-line (a screen share ended) ends that track for everyone.
        let ended: Vec<TrackId> = self
            .peers
            .get_mut(&id)
            .map(|peer| {
                let rtc = &peer.rtc;
                let gone: Vec<Mid> = peer
                    .published
                    .keys()
                    .filter(|mid| {
                        rtc.media(**mid)
                            .is_none_or(|m| m.disabled() || !m.direction().is_receiving())
                    })
                    .copied()
                    .collect();
                gone.iter()
                    .filter_map(|mid| peer.published.remove(mid))
                    .collect()
            })
            .unwrap_or_default();
        let mut renegotiate = Vec::new();
        for track in ended {
            self.unpublish(id, track, &mut renegotiate);
        }
        for subscriber in renegotiate {
            self.offer_if_possible(subscriber);
        }
        self.mark_dirty(id);
        Ok(answer)
    }

    /// Creates a subscriber connection; it is offered to the client when it gets its first track.
    pub fn add_subscriber(&mut self, id: PeerId, now: Instant) -> Result<(), SfuError> {
        self.new_peer(id, Role::Subscriber, now)?;
        Ok(())
    }

    /// A candidate the client trickled for one of its connections (`candidate:...` as in SDP).
    pub fn add_remote_candidate(&mut self, id: PeerId, candidate: &str) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer(id))?;
        let line = candidate.strip_prefix("a=").unwrap_or(candidate);
        // Parsing is inside the guard too: the text is the client's.
        let added = guarded(peer, |rtc| {
            Ok(Candidate::from_sdp_string(line).map(|parsed| rtc.add_remote_candidate(parsed)))
        });
        match added {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(SfuError::BadCandidate(err.to_string())),
            Err(fault) => return Err(self.fail(id, fault)),
        }
        self.mark_dirty(id);
        Ok(())
    }

    /// An ICE restart gives a connection new local credentials: the first datagrams of the new
    /// path name the new ufrag, so the demux map must know it (and forget the old one).
    pub(super) fn follow_ice_credentials(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag == peer.ufrag {
            return;
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.by_ufrag.insert(ufrag.clone(), id);
        peer.ufrag = ufrag;
    }

    /// Restarts ICE on a subscriber connection: its next offer carries new credentials, so a
    /// client whose network changed can reach the server again on a new path. (A publisher
    /// connection restarts by the client's own re-offer.)
    pub fn restart_ice(&mut self, id: PeerId) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer(id))?;
        if peer.role != Role::Subscriber {
            return Err(SfuError::WrongRole(id, Role::Subscriber));
        }
        peer.restart_ice = true;
        self.offer_if_possible(id);
        self.still_open(id)
    }
}
