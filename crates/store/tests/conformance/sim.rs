//! Checkouts of simulated phones shared by nodes: exclusive while held, taken over once
//! expired, and publishes fenced on the holder and the generation read.

use cloudphone_store::SimPublish;
use cloudphone_store::prelude::*;

const NOW: i64 = 1_000_000;
const TTL: i64 = 5_000;

fn publish(generation: i64, manifest: &str) -> SimPublish {
    SimPublish {
        generation,
        manifest: manifest.into(),
        props: "{\"p\":1}".into(),
        state: format!("{{\"g\":{generation}}}"),
        live: String::new(),
    }
}

pub async fn check_sim_checkouts(store: &dyn Store) {
    // First use makes the row: generation 0, nothing published.
    let a = store.sim_acquire("acp-1", "n1", NOW, TTL).await.unwrap();
    let a = a.expect("a free phone is granted");
    assert_eq!((a.generation, a.manifest.as_str()), (0, ""));
    // Exclusive: another node waits; the holder may take it again (renewing it).
    assert_eq!(
        store
            .sim_acquire("acp-1", "n2", NOW + 1, TTL)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .sim_acquire("acp-1", "n1", NOW + 1, TTL)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.sim_renew("acp-1", "n1", NOW + 2, TTL).await.unwrap());
    assert!(!store.sim_renew("acp-1", "n2", NOW + 2, TTL).await.unwrap());
    // Another phone is independent.
    assert!(
        store
            .sim_acquire("acp-2", "n2", NOW, TTL)
            .await
            .unwrap()
            .is_some()
    );

    // The generation is read without a checkout.
    assert_eq!(store.sim_generation("acp-1").await.unwrap(), Some(0));
    assert_eq!(store.sim_generation("acp-9").await.unwrap(), None);

    // Publish: fenced on the holder and the generation.
    assert!(
        !store
            .sim_publish("acp-1", "n2", &publish(0, "m/1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .sim_publish("acp-1", "n1", &publish(0, "m/1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .sim_publish("acp-1", "n1", &publish(0, "m/x"))
            .await
            .unwrap(),
        "a generation already superseded"
    );
    assert_eq!(store.sim_generation("acp-1").await.unwrap(), Some(1));

    // Expiry: n2 takes over and sees what n1 published.
    assert_eq!(
        store
            .sim_acquire("acp-1", "n2", NOW + TTL, TTL)
            .await
            .unwrap(),
        None
    );
    let b = store
        .sim_acquire("acp-1", "n2", NOW + TTL + 3, TTL)
        .await
        .unwrap();
    let b = b.expect("an expired checkout is taken over");
    assert_eq!(b.generation, 1);
    assert_eq!(b.manifest, "m/1");
    assert_eq!(
        (b.props.as_str(), b.state.as_str()),
        ("{\"p\":1}", "{\"g\":0}")
    );
    // The old holder is fenced out of publishing and renewing.
    assert!(
        !store
            .sim_publish("acp-1", "n1", &publish(1, "m/2"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .sim_renew("acp-1", "n1", NOW + TTL + 4, TTL)
            .await
            .unwrap()
    );
    assert!(!store.sim_release("acp-1", "n1").await.unwrap());

    // Release: free for anyone at once.
    assert!(store.sim_release("acp-1", "n2").await.unwrap());
    let c = store
        .sim_acquire("acp-1", "n1", NOW + TTL + 5, TTL)
        .await
        .unwrap();
    assert_eq!(c.map(|c| c.generation), Some(1));

    // Forget: a deleted phone starts again from nothing.
    assert!(store.sim_forget("acp-1").await.unwrap());
    let d = store
        .sim_acquire("acp-1", "n2", NOW + TTL + 6, TTL)
        .await
        .unwrap();
    assert_eq!(d.map(|d| d.generation), Some(0));
}
