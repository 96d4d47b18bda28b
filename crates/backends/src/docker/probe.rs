//! What a host's watcher (the node holding the host's lease) asks of its engine: a ping with a
//! short deadline, the engine's version, the containers of this farm on it, the stream of
//! their lifecycle events, and the removal of an orphan. No state is kept here and nothing is
//! decided: the watcher (crates/cloudphone `farm`) compares with the store and writes.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    EventsOptions, ListContainersOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use futures::{Stream, StreamExt};

use super::host::DockerHost;
use super::{DockerBackend, LABEL_ADB_PORT, LABEL_INSTANCE};

/// How long a ping may take before the engine counts as not answering.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A container of this farm as its engine lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSeen {
    pub instance_id: String,
    pub running: bool,
    /// The host-network port it was given (its label).
    pub adb_port: Option<u16>,
}

/// What happened to a phone's container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerEvent {
    Started,
    /// Died, was killed by the OOM killer, or was removed.
    Gone,
}

/// One event of a host's stream: the phone and what happened, and when (seconds since the
/// epoch, for the next subscription's `since`, and milliseconds, to tell it from what the
/// store recorded since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEvent {
    pub instance_id: String,
    pub event: ContainerEvent,
    pub time: i64,
    pub time_ms: i64,
}

impl DockerBackend {
    fn host_named(&self, name: &str) -> Result<&DockerHost, String> {
        self.hosts
            .iter()
            .find(|h| h.spec().name == name)
            .map(|h| h.as_ref())
            .ok_or_else(|| format!("the host {name} is not in this node's backends file"))
    }

    /// The engine answers a ping within [`PING_TIMEOUT`].
    pub async fn ping(&self, host: &str) -> Result<(), String> {
        let h = self.host_named(host)?;
        let docker = tokio::time::timeout(PING_TIMEOUT, h.docker())
            .await
            .map_err(|_| "the engine did not answer within 1 s".to_string())?
            .map_err(|e| e.message)?;
        match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the engine's ping failed: {e}")),
            Err(_) => Err("the engine did not answer a ping within 1 s".into()),
        }
    }

    /// The engine's version and the API version it speaks.
    pub async fn engine_version(&self, host: &str) -> Result<(String, String), String> {
        let docker = self
            .host_named(host)?
            .docker()
            .await
            .map_err(|e| e.message)?;
        let v = docker
            .version()
            .await
            .map_err(|e| format!("the engine's version: {e}"))?;
        Ok((
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
        ))
    }

    /// The containers of this farm (its name prefix) on the host, running or not.
    pub async fn containers(&self, host: &str) -> Result<Vec<ContainerSeen>, String> {
        let h = self.host_named(host)?;
        let docker = h.docker().await.map_err(|e| e.message)?;
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![LABEL_INSTANCE.to_string()]);
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| format!("listing the containers: {e}"))?;
        let ours = format!("/{}", self.config.name_prefix);
        Ok(list
            .into_iter()
            .filter(|c| {
                c.names
                    .as_ref()
                    .is_some_and(|n| n.iter().any(|n| n.starts_with(&ours)))
            })
            .filter_map(|c| {
                let labels = c.labels.as_ref()?;
                Some(ContainerSeen {
                    instance_id: labels.get(LABEL_INSTANCE)?.clone(),
                    running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                    adb_port: labels.get(LABEL_ADB_PORT).and_then(|p| p.parse().ok()),
                })
            })
            .collect())
    }

    /// The host's container events from `since` (seconds since the epoch) on, for this
    /// farm's containers. The stream is lazy: poll it before relying on what follows. It
    /// ends, or yields an error, when the engine goes away.
    pub fn events(
        &self,
        host: &str,
        since: i64,
    ) -> Result<impl Stream<Item = Result<HostEvent, String>> + Send + 'static, String> {
        let h = self.host_named(host)?;
        let docker = h
            .negotiated()
            .ok_or_else(|| "the engine has not answered yet".to_string())?;
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        filters.insert("label".to_string(), vec![LABEL_INSTANCE.to_string()]);
        filters.insert(
            "event".to_string(),
            ["start", "die", "destroy", "oom"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        let prefix = self.config.name_prefix.clone();
        let stream = docker.events(Some(EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        }));
        Ok(stream.filter_map(move |e| {
            let out = match e {
                Err(e) => Some(Err(format!("the engine's event stream failed: {e}"))),
                Ok(m) => event_of(&m, &prefix).map(Ok),
            };
            std::future::ready(out)
        }))
    }

    /// Removes a container of this farm and its volume from the host (an orphan: its phone is
    /// gone, or lives elsewhere).
    pub async fn remove_orphan(&self, host: &str, instance_id: &str) -> Result<(), String> {
        let h = self.host_named(host)?;
        let docker = h.docker().await.map_err(|e| e.message)?;
        let name = format!("{}{instance_id}", self.config.name_prefix);
        match docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if super::host::status_of(&e) == Some(404) => {}
            Err(e) => return Err(format!("removing {name}: {e}")),
        }
        let volume = format!("{name}-data");
        match docker
            .remove_volume(&volume, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if super::host::status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(format!("removing {volume}: {e}")),
        }
    }
}

fn event_of(m: &bollard::models::EventMessage, prefix: &str) -> Option<HostEvent> {
    let attributes = m.actor.as_ref()?.attributes.as_ref()?;
    if !attributes.get("name")?.starts_with(prefix) {
        return None;
    }
    let event = match m.action.as_deref()? {
        "start" => ContainerEvent::Started,
        "die" | "destroy" | "oom" => ContainerEvent::Gone,
        _ => return None,
    };
    Some(HostEvent {
        instance_id: attributes.get(LABEL_INSTANCE)?.clone(),
        event,
        time: m.time.unwrap_or(0),
        time_ms: m
            .time_nano
            .map_or(m.time.unwrap_or(0) * 1000, |n| n / 1_000_000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessage};

    fn message(action: &str, name: &str) -> EventMessage {
        let mut attributes = HashMap::new();
        attributes.insert("name".to_string(), name.to_string());
        attributes.insert(LABEL_INSTANCE.to_string(), "acp-1".to_string());
        EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("c1".into()),
                attributes: Some(attributes),
            }),
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_123_456_789),
            ..Default::default()
        }
    }

    #[test]
    fn events_of_this_farm_only() {
        let seen = event_of(&message("die", "cp-x-acp-1"), "cp-x-").unwrap();
        assert_eq!(
            (
                seen.instance_id.as_str(),
                seen.event,
                seen.time,
                seen.time_ms
            ),
            (
                "acp-1",
                ContainerEvent::Gone,
                1_700_000_000,
                1_700_000_000_123
            )
        );
        assert_eq!(
            event_of(&message("start", "cp-x-acp-1"), "cp-x-").map(|e| e.event),
            Some(ContainerEvent::Started)
        );
        assert_eq!(
            event_of(&message("oom", "cp-x-acp-1"), "cp-x-").map(|e| e.event),
            Some(ContainerEvent::Gone)
        );
        assert!(event_of(&message("die", "other-acp-1"), "cp-x-").is_none());
        assert!(event_of(&message("pause", "cp-x-acp-1"), "cp-x-").is_none());
    }
}
