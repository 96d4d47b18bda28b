//! `cloudphone admin hosts ...`: the farm's hosts as the store knows them (each host's phones,
//! capacity, health, versions, watcher, and whether the nodes' files agree on it), and
//! cordoning one so that no new phone is placed on it. Like the other admin commands it works
//! on the store directly; the nodes see a change at their next placement. Draining a host
//! (moving its phones to the others) is [`drain`]'s.

mod drain;

use anyhow::bail;
use clap::Subcommand;
use cloudphone_core::placement::Strategy;
use cloudphone_store::{Health, HostRow, NodeRow, Store};
use serde_json::json;

use crate::cli::{Output, table};

/// Nodes whose heartbeat is younger than this count as alive for the CONFIG column.
const LIVE_MS: i64 = 15_000;

#[derive(Subcommand)]
pub enum HostsCommand {
    /// Lists the hosts: phones, capacity, health, versions, the node watching each.
    List,
    /// Places no new phone on the host (its phones stay and keep working).
    Cordon { name: String },
    /// Lets new phones be placed on the host again.
    Uncordon { name: String },
    /// Moves every phone of the host to the other hosts (stopped, data volume copied,
    /// started there), as MigrateInstance tasks any node runs; the host stays cordoned.
    Drain {
        name: String,
        /// Create the phones afresh from their image instead of copying their data (which is
        /// lost): the way off a host that does not answer.
        #[arg(long)]
        recreate: bool,
        /// Move the phones that fit when not all of them do (else nothing moves).
        #[arg(long)]
        partial: bool,
        /// Where the phones go: `spread` (the emptiest hosts first) or `binpack` (the fullest
        /// hosts that have room first).
        #[arg(long, default_value = "spread", value_parser = parse_placement)]
        placement: Strategy,
        /// Print the progress until every move ended; exit status 1 if any failed.
        #[arg(long)]
        wait: bool,
    },
    /// Lists the hosts' drains, or drain ID with each phone's move.
    Drains { id: Option<String> },
}

pub async fn run(store: &dyn Store, c: HostsCommand, output: Output) -> anyhow::Result<i32> {
    match c {
        HostsCommand::List => {
            let now = cloudphone_core::time::now_ms();
            let hosts = store.list_hosts().await?;
            let nodes = store.live_nodes(now, LIVE_MS).await?;
            match output {
                Output::Json => {
                    let rows: Vec<_> = hosts.iter().map(|h| json_row(h, &nodes, now)).collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> =
                        hosts.iter().map(|h| table_row(h, &nodes, now)).collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "Name", "Kind", "Address", "State", "Cordoned", "Phones", "Cpu",
                                "Memory", "Moving", "Version", "Owner", "Config"
                            ],
                            &rows
                        )
                    );
                }
            }
            Ok(0)
        }
        HostsCommand::Cordon { name } => cordon(store, &name, true).await,
        HostsCommand::Uncordon { name } => cordon(store, &name, false).await,
        HostsCommand::Drain {
            name,
            recreate,
            partial,
            placement,
            wait,
        } => {
            let args = drain::DrainArgs {
                name,
                recreate,
                partial,
                placement,
                wait,
            };
            drain::drain(store, args, output).await
        }
        HostsCommand::Drains { id } => drain::drains(store, id, output).await,
    }
}

fn parse_placement(s: &str) -> Result<Strategy, String> {
    s.parse()
        .map_err(|()| format!("{s:?} is no placement: spread or binpack"))
}

async fn cordon(store: &dyn Store, name: &str, on: bool) -> anyhow::Result<i32> {
    let host = store
        .list_hosts()
        .await?
        .into_iter()
        .find(|h| h.name == name);
    let Some(host) = host else {
        bail!("no host {name}: `cloudphone admin hosts list` shows them");
    };
    if !on
        && let Some(drain) = &host.drain_id
        && !store
            .end_drain(drain, cloudphone_core::time::now_ms())
            .await?
    {
        bail!("the host {name} is being drained ({drain}): it stays cordoned until it is done");
    }
    store.set_cordon(name, on).await?;
    println!(
        "{name} {}",
        if on {
            "cordoned: no new phone goes there"
        } else {
            "uncordoned"
        }
    );
    Ok(0)
}

/// `healthy`, `unhealthy: why`, `missing`, `unknown`; a health not confirmed lately is
/// `stale`, as placement sees it.
fn state(h: &HostRow, now: i64) -> String {
    match h.health {
        Health::Healthy if h.kind.as_str() == "sim" => "healthy".into(),
        Health::Healthy if h.health_ms < now - cloudphone_store::HEALTH_TRUST_MS => {
            format!("stale ({} s)", (now - h.health_ms) / 1000)
        }
        Health::Unhealthy if !h.health_reason.is_empty() => {
            format!("unhealthy: {}", h.health_reason)
        }
        other => other.as_str().into(),
    }
}

/// `same`, or the live nodes whose file has this host otherwise.
fn config(h: &HostRow, nodes: &[NodeRow]) -> String {
    let differ: Vec<&str> = nodes
        .iter()
        .filter(|n| {
            n.hosts
                .iter()
                .any(|(name, digest)| name == &h.name && digest != &h.digest)
        })
        .map(|n| n.id.as_str())
        .collect();
    if differ.is_empty() {
        "same".into()
    } else {
        format!("differs on {}", differ.join(", "))
    }
}

fn limit(used: u64, max: Option<u64>) -> String {
    match max {
        Some(m) => format!("{used}/{m}"),
        None => used.to_string(),
    }
}

fn owner(h: &HostRow, now: i64) -> String {
    match &h.owner_node {
        Some(node) if h.lease_until_ms >= now => {
            format!("{node} ({} ms)", h.lease_until_ms - now)
        }
        Some(node) => format!("{node} (lapsed)"),
        None => "-".into(),
    }
}

fn table_row(h: &HostRow, nodes: &[NodeRow], now: i64) -> Vec<String> {
    vec![
        h.name.clone(),
        h.kind.as_str().into(),
        h.address.clone(),
        state(h, now),
        if h.cordoned { "yes" } else { "no" }.into(),
        limit(h.used.phones, h.limits.phones),
        limit(
            h.used.cpu_milli / 1000,
            h.limits.cpu_milli.map(|c| c / 1000),
        ),
        limit(
            h.used.memory_mib / 1024,
            h.limits.memory_mib.map(|m| m / 1024),
        ),
        format!("{} in, {} out", h.moving_in, h.moving_out),
        if h.engine_version.is_empty() {
            "-".into()
        } else {
            format!("{} / API {}", h.engine_version, h.api_version)
        },
        owner(h, now),
        config(h, nodes),
    ]
}

fn json_row(h: &HostRow, nodes: &[NodeRow], now: i64) -> serde_json::Value {
    json!({
        "Name": h.name,
        "Kind": h.kind.as_str(),
        "Address": h.address,
        "State": state(h, now),
        "Health": h.health.as_str(),
        "HealthReason": h.health_reason,
        "Cordoned": h.cordoned,
        "Drain": h.drain_id,
        "Phones": h.used.phones,
        "MaxPhones": h.limits.phones,
        "CpuMilli": h.used.cpu_milli,
        "MaxCpuMilli": h.limits.cpu_milli,
        "MemoryMib": h.used.memory_mib,
        "MaxMemoryMib": h.limits.memory_mib,
        "MovingIn": h.moving_in,
        "MovingOut": h.moving_out,
        "PortsUsed": h.ports_used,
        "EngineVersion": h.engine_version,
        "ApiVersion": h.api_version,
        "Owner": h.owner_node,
        "LeaseUntil": h.owner_node.as_ref().map(|_| cloudphone_core::time::iso(h.lease_until_ms)),
        "Seen": cloudphone_core::time::iso(h.seen_ms),
        "Config": config(h, nodes),
    })
}
