//! Where a room goes, and when it may move: decisions without I/O, so the rules the split-brain
//! guard rests on are tested on their own.

use serde::{Deserialize, Serialize};

use crate::node::{Heartbeat, NodeId, NodeState, Region};

/// A room's host, as stored in the rooms bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The node hosting the room.
    pub node: NodeId,
    /// The bucket's revision of this placement: a move must name it, so two nodes can never
    /// both move a room.
    #[serde(skip)]
    pub revision: u64,
}

/// Picks the node for a new room in `region` by the power of two choices: two serving nodes
/// drawn at random (`draw(n)` returns an index below `n`), the less loaded one wins. Nodes of
/// the region come first; when none of them serves, any serving node takes the room rather than
/// nobody. `None` when no node serves at all.
pub fn choose<'a>(
    nodes: &'a [Heartbeat],
    region: &Region,
    mut draw: impl FnMut(usize) -> usize,
) -> Option<&'a Heartbeat> {
    let serving = |h: &&Heartbeat| h.state == NodeState::Serving;
    let mut pool: Vec<&Heartbeat> = nodes
        .iter()
        .filter(serving)
        .filter(|h| &h.region == region)
        .collect();
    if pool.is_empty() {
        pool = nodes.iter().filter(serving).collect();
    }
    match pool.len() {
        0 => None,
        1 => pool.first().copied(),
        n => {
            let first = draw(n) % n;
            // The second draw is among the others, so the two candidates differ.
            let second = (first + 1 + draw(n - 1) % (n - 1)) % n;
            let (a, b) = (pool[first], pool[second]);
            Some(if b.load.score() < a.load.score() {
                b
            } else {
                a
            })
        }
    }
}

/// Like [`choose`], but `preferred` takes the room whenever it is one of the nodes [`choose`]
/// would draw from (serving, and of the region unless none of the region serves): a host
/// placing a room again for itself (a relayed join or a command found the placement gone).
pub fn choose_preferring<'a>(
    nodes: &'a [Heartbeat],
    region: &Region,
    preferred: &NodeId,
    draw: impl FnMut(usize) -> usize,
) -> Option<&'a Heartbeat> {
    let serving: Vec<&Heartbeat> = nodes
        .iter()
        .filter(|h| h.state == NodeState::Serving)
        .collect();
    let in_region = serving.iter().any(|h| &h.region == region);
    let eligible = |h: &&&Heartbeat| !in_region || &h.region == region;
    serving
        .iter()
        .filter(eligible)
        .find(|h| &h.node == preferred)
        .copied()
        .or_else(|| choose(nodes, region, draw))
}

/// What a node that wants a room hosted should do about the room's current placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody hosts it: create the placement.
    Place,
    /// Its host is alive: the room stays there.
    Keep(Placement),
    /// Its host's heartbeat expired but something still answers on the room's subject (a slow
    /// or partitioned host): the room is *not* moved, or two nodes would host it.
    Guarded(Placement),
    /// Its host is gone and nobody answers for the room: move it, naming this revision.
    Replace(Placement),
}

/// Decides about `current`, given whether its host has a live heartbeat (`host_alive`) and,
/// asked only when it has not, whether anyone answers on the room's subject (`responders`;
/// an unanswered probe that timed out counts as an answer: when in doubt, do not move).
pub fn verdict(
    current: Option<Placement>,
    host_alive: impl FnOnce(&NodeId) -> bool,
    responders: impl FnOnce() -> bool,
) -> Verdict {
    let Some(current) = current else {
        return Verdict::Place;
    };
    if host_alive(&current.node) {
        Verdict::Keep(current)
    } else if responders() {
        Verdict::Guarded(current)
    } else {
        Verdict::Replace(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Load;

    fn node(name: &str, region: &str, state: NodeState, cpu: f32) -> Heartbeat {
        Heartbeat {
            node: NodeId::new(name).expect("name"),
            region: Region::new(region).expect("region"),
            state,
            load: Load {
                cpu,
                ..Load::default()
            },
            advertise_url: format!("http://{name}"),
            sequence: 1,
            started_at_ms: 0,
        }
    }

    fn eu() -> Region {
        Region::new("eu").expect("region")
    }

    #[test]
    fn the_less_loaded_of_two_draws_wins() {
        let nodes = [
            node("a", "eu", NodeState::Serving, 0.9),
            node("b", "eu", NodeState::Serving, 0.1),
            node("c", "eu", NodeState::Serving, 0.5),
        ];
        // Draws a and b: b; draws a and c: c; draws c and a: c.
        let pick = |draws: [usize; 2]| {
            let mut draws = draws.into_iter();
            choose(&nodes, &eu(), |_| draws.next().unwrap_or(0)).map(|h| h.node.as_str())
        };
        assert_eq!(pick([0, 0]), Some("b"));
        assert_eq!(pick([0, 1]), Some("c"));
        assert_eq!(pick([2, 0]), Some("c"));
    }

    #[test]
    fn every_draw_gives_two_different_candidates() {
        let nodes = [
            node("a", "eu", NodeState::Serving, 0.5),
            node("b", "eu", NodeState::Serving, 0.1),
        ];
        // Whatever the draws, b (the less loaded) is always one of the two.
        for first in 0..4 {
            for second in 0..4 {
                let mut draws = [first, second].into_iter();
                let chosen = choose(&nodes, &eu(), |_| draws.next().unwrap_or(0));
                assert_eq!(chosen.map(|h| h.node.as_str()), Some("b"));
            }
        }
    }

    #[test]
    fn draining_nodes_and_other_regions_take_no_new_room_while_the_region_serves() {
        let nodes = [
            node("drain", "eu", NodeState::Draining, 0.0),
            node("far", "us", NodeState::Serving, 0.0),
            node("home", "eu", NodeState::Serving, 0.9),
        ];
        for draw in 0..5 {
            let chosen = choose(&nodes, &eu(), |_| draw);
            assert_eq!(chosen.map(|h| h.node.as_str()), Some("home"));
        }
    }

    #[test]
    fn a_region_with_no_serving_node_borrows_another() {
        let nodes = [
            node("drain", "eu", NodeState::Draining, 0.0),
            node("far", "us", NodeState::Serving, 0.3),
        ];
        assert_eq!(
            choose(&nodes, &eu(), |_| 0).map(|h| h.node.as_str()),
            Some("far")
        );
        let all_draining = [node("drain", "eu", NodeState::Draining, 0.0)];
        assert_eq!(choose(&all_draining, &eu(), |_| 0), None);
        assert_eq!(choose(&[], &eu(), |_| 0), None);
    }

    #[test]
    fn the_preferred_node_takes_the_room_while_it_may() {
        let nodes = [
            node("busy", "eu", NodeState::Serving, 0.9),
            node("idle", "eu", NodeState::Serving, 0.0),
            node("drain", "eu", NodeState::Draining, 0.0),
            node("far", "us", NodeState::Serving, 0.0),
        ];
        let pick = |preferred: &str| {
            let preferred = NodeId::new(preferred).expect("name");
            choose_preferring(&nodes, &eu(), &preferred, |_| 0).map(|h| h.node.as_str())
        };
        assert_eq!(pick("busy"), Some("busy"), "preferred although busier");
        // Draining, of another region while the region serves, or unknown: the usual choice.
        assert_eq!(pick("drain"), Some("idle"));
        assert_eq!(pick("far"), Some("idle"));
        assert_eq!(pick("gone"), Some("idle"));
        // A region nobody serves: the preferred node of another region may take it.
        let us_only = [node("far", "us", NodeState::Serving, 0.5)];
        let far = NodeId::new("far").expect("name");
        assert_eq!(
            choose_preferring(&us_only, &eu(), &far, |_| 0).map(|h| h.node.as_str()),
            Some("far")
        );
    }

    #[test]
    fn a_room_moves_only_when_its_host_is_dead_and_nobody_answers_for_it() {
        let placed = Placement {
            node: NodeId::new("a").expect("name"),
            revision: 7,
        };
        assert_eq!(verdict(None, |_| true, || true), Verdict::Place);
        assert_eq!(
            verdict(Some(placed.clone()), |_| true, || false),
            Verdict::Keep(placed.clone())
        );
        assert_eq!(
            verdict(Some(placed.clone()), |_| false, || true),
            Verdict::Guarded(placed.clone())
        );
        assert_eq!(
            verdict(Some(placed.clone()), |_| false, || false),
            Verdict::Replace(placed)
        );
    }
}
