//! The attempts running on this node, by task id, so that a cancel made on this node reaches
//! them at once: CancelTasks rings an attempt's bell, and its worker renews its lease right
//! away, learning of the cancel from the store. Attempts on other nodes learn of it at their
//! next heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Stops {
    running: Mutex<HashMap<String, Arc<Notify>>>,
}

/// An attempt's place in [`Stops`]; leaves it when dropped.
pub struct Bell {
    stops: Arc<Stops>,
    task_id: String,
    pub notify: Arc<Notify>,
}

impl Drop for Bell {
    fn drop(&mut self) {
        if let Ok(mut running) = self.stops.running.lock() {
            running.remove(&self.task_id);
        }
    }
}

impl Stops {
    /// Wakes the attempts of `task_ids` that run on this node (the others are left to their
    /// heartbeats).
    pub fn ring(&self, task_ids: &[String]) {
        if let Ok(running) = self.running.lock() {
            for id in task_ids {
                if let Some(bell) = running.get(id) {
                    bell.notify_one();
                }
            }
        }
    }

    /// Registers the attempt running `task_id`.
    pub fn enter(self: &Arc<Self>, task_id: &str) -> Bell {
        let notify = Arc::new(Notify::new());
        if let Ok(mut running) = self.running.lock() {
            running.insert(task_id.to_string(), notify.clone());
        }
        Bell {
            stops: self.clone(),
            task_id: task_id.to_string(),
            notify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ring_reaches_the_running_attempt_only_while_it_runs() {
        let stops = Arc::new(Stops::default());
        let bell = stops.enter("t-1");
        stops.ring(&["t-2".to_string()]);
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(20), bell.notify.notified());
        assert!(quiet.await.is_err(), "another task's ring");
        stops.ring(&["t-1".to_string()]);
        // Bounded, so that a ring that never arrives fails the test instead of hanging it.
        tokio::time::timeout(std::time::Duration::from_secs(5), bell.notify.notified())
            .await
            .expect("the ring reached the running attempt");
        drop(bell);
        assert!(stops.running.lock().unwrap().is_empty());
    }
}
