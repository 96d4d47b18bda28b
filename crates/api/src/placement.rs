//! Which new phones the farm places on its hosts, and how (docs/design.md §4.1): the binary
//! knows which backend runs each image and hands the API this policy; creations and
//! UpgradeAndroidInstanceGroup turn it into the store's [`PlacementAsk`].

use std::collections::HashMap;

use cloudphone_core::placement::Strategy;
use cloudphone_store::{HostKind, PlacementAsk};

/// The images whose phones live on hosts (by the kind of host that runs them), and the
/// strategy that spreads them. An image it does not name (an ADB server's devices, or every
/// image under the default policy) is never placed.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    pub kinds: HashMap<String, HostKind>,
    pub strategy: Strategy,
}

impl Placement {
    /// What a creation of phones of `image` asks of the store's placement at `now_ms`.
    pub fn ask(&self, image: &str, now_ms: i64) -> Option<PlacementAsk> {
        self.kinds.get(image).map(|&kind| PlacementAsk {
            kind,
            strategy: self.strategy,
            now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_images_are_placed() {
        assert_eq!(Placement::default().ask("imgc-a", 5), None);
        let policy = Placement {
            kinds: HashMap::from([("imgc-a".to_string(), HostKind::Docker)]),
            strategy: Strategy::BinPack,
        };
        assert_eq!(
            policy.ask("imgc-a", 5),
            Some(PlacementAsk {
                kind: HostKind::Docker,
                strategy: Strategy::BinPack,
                now_ms: 5
            })
        );
        assert_eq!(policy.ask("imgc-b", 5), None);
    }
}
