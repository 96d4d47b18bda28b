//! The backends file (`serve --backends FILE`, TOML): which backends run which images. Without
//! one a node runs the simulated fleet alone. See README, "Real phones".
//!
//! ```toml
//! [adb]                      # the ADB server the in-phone operations go through
//! port = 5037
//!
//! [docker]
//! network = "bridge"         # or "host" (with adb_ports), or "none"
//!
//! [[docker.images]]
//! id = "imgc-redroid12"
//! name = "Android 12 (redroid)"
//! android_version = "12"
//! reference = "redroid/redroid:12.0.0_64only-latest"
//! privileged = true
//! args = ["androidboot.redroid_width=720", "androidboot.redroid_height=1280"]
//! # run_as_root = true      # let commands and file work run as root (default: Android's shell)
//!
//! [scrcpy]                   # live screens of docker and adb phones through scrcpy's server
//! server = "/opt/scrcpy/scrcpy-server-v3.3.4"   # checked to be 3.3.4's (sha256) at start
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use cloudphone_backends::adb::{AdbServer, ScrcpyServer};
use cloudphone_backends::{AdbGroupConfig, DockerConfig, DockerImage};
use cloudphone_core::resources::Image;
use serde::Deserialize;

use crate::docker_hosts::{self, HostSection};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsFile {
    /// Keep the simulated fleet's images beside the others (default: yes).
    #[serde(default = "yes")]
    pub sim: bool,
    #[serde(default)]
    pub adb: AdbSection,
    pub docker: Option<DockerSection>,
    pub scrcpy: Option<ScrcpySection>,
}

/// `[scrcpy]`: without it, the screens of docker and adb phones are `screencap` frames.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrcpySection {
    /// The scrcpy server 3.3.4 jar (`scrcpy-server-v3.3.4`), pushed to the phones.
    pub server: PathBuf,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdbSection {
    /// The `adb` program (default: `adb` on the PATH).
    pub program: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// ADB servers whose devices become instances, one group each.
    #[serde(default)]
    pub groups: Vec<AdbGroupSection>,
    #[serde(default = "boot_timeout")]
    pub boot_timeout_secs: u64,
    /// How often the servers are asked for their devices, in milliseconds.
    #[serde(default = "discover_interval")]
    pub discover_interval_ms: u64,
}

fn discover_interval() -> u64 {
    2000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdbGroupSection {
    /// The group's name; the seed of its id and of its devices' instance ids.
    pub name: String,
    /// The image id its devices show as (`imgc-...`).
    pub image_id: String,
    pub image_name: Option<String>,
    #[serde(default = "android_version")]
    pub android_version: String,
    /// This group's ADB server, if not the `[adb]` one.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Devices reached over TCP (`HOST:PORT`), connected and kept connected.
    #[serde(default)]
    pub connect: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSection {
    /// `unix:///var/run/docker.sock` (default: `DOCKER_HOST`, else that socket).
    pub socket: Option<String>,
    #[serde(default = "bridge")]
    pub network: String,
    /// `FIRST-LAST`: the ports handed to phones on the host network.
    pub adb_ports: Option<String>,
    #[serde(default = "boot_timeout")]
    pub boot_timeout_secs: u64,
    #[serde(default = "stop_timeout")]
    pub stop_timeout_secs: u64,
    #[serde(default = "prefix")]
    pub name_prefix: String,
    /// Where new phones go: `spread` (the least used host) or `binpack` (the fullest that fits).
    #[serde(default = "spread")]
    pub placement: String,
    #[serde(default)]
    pub images: Vec<ImageSection>,
    /// The farm's engines; without any, `socket` is the one host `default`.
    #[serde(default)]
    pub hosts: Vec<HostSection>,
}

fn spread() -> String {
    "spread".into()
}

fn bridge() -> String {
    "bridge".into()
}
fn boot_timeout() -> u64 {
    180
}
fn stop_timeout() -> u64 {
    10
}
fn prefix() -> String {
    "cloudphone-".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    pub id: String,
    pub name: Option<String>,
    #[serde(default = "android_version")]
    pub android_version: String,
    #[serde(default)]
    pub description: String,
    pub reference: String,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default = "data_path")]
    pub data_path: String,
    #[serde(default = "adb_port")]
    pub adb_port: u16,
    /// Let in-phone work run as root when the image's adbd does (redroid's); by default it is
    /// made to run as Android's `shell` user (`adb unroot`).
    #[serde(default)]
    pub run_as_root: bool,
}

fn android_version() -> String {
    "12".into()
}
fn data_path() -> String {
    "/data".into()
}
fn adb_port() -> u16 {
    5555
}

fn valid_image_id(id: &str) -> bool {
    id.len() > cloudphone_core::ids::IMAGE.len()
        && id.starts_with(cloudphone_core::ids::IMAGE)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl BackendsFile {
    pub fn read(path: &Path) -> anyhow::Result<BackendsFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: BackendsFile =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        file.docker_config()
            .with_context(|| format!("in {}", path.display()))?;
        file.adb_groups()
            .with_context(|| format!("in {}", path.display()))?;
        file.scrcpy_server()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(file)
    }

    /// The scrcpy server jar of `[scrcpy]`, checked to be 3.3.4's.
    pub fn scrcpy_server(&self) -> anyhow::Result<Option<ScrcpyServer>> {
        let Some(section) = &self.scrcpy else {
            return Ok(None);
        };
        Ok(Some(
            ScrcpyServer::load(&section.server).context("[scrcpy] server")?,
        ))
    }

    pub fn adb_server(&self) -> AdbServer {
        AdbServer {
            program: self
                .adb
                .program
                .clone()
                .unwrap_or_else(|| PathBuf::from("adb")),
            host: self.adb.host.clone(),
            port: self.adb.port,
        }
    }

    /// The adb backend's groups (`[[adb.groups]]`), if any.
    pub fn adb_groups(&self) -> anyhow::Result<Vec<AdbGroupConfig>> {
        let mut out: Vec<AdbGroupConfig> = Vec::new();
        for g in &self.adb.groups {
            if !valid_image_id(&g.image_id) {
                bail!(
                    "adb group {:?}: image_id {:?} must start with imgc-",
                    g.name,
                    g.image_id
                );
            }
            if g.name.trim().is_empty() {
                bail!("every [[adb.groups]] needs a name");
            }
            if out.iter().any(|o| o.name == g.name) {
                bail!("the adb group {:?} is configured twice", g.name);
            }
            let mut server = self.adb_server();
            if g.host.is_some() {
                server.host = g.host.clone();
            }
            if g.port.is_some() {
                server.port = g.port;
            }
            out.push(AdbGroupConfig {
                name: g.name.clone(),
                image: Image {
                    id: g.image_id.clone(),
                    name: g
                        .image_name
                        .clone()
                        .unwrap_or_else(|| format!("ADB devices: {}", g.name)),
                    android_version: g.android_version.clone(),
                    system_type: "Android".into(),
                    description: format!("The devices of the ADB server of group {}", g.name),
                    release_ms: 0,
                },
                server,
                connect: g.connect.clone(),
            });
        }
        Ok(out)
    }

    /// The docker backend's settings, if the file has a `[docker]` section.
    pub fn docker_config(&self) -> anyhow::Result<Option<DockerConfig>> {
        let Some(d) = &self.docker else {
            return Ok(None);
        };
        if !matches!(d.placement.as_str(), "spread" | "binpack") {
            bail!(
                "docker.placement is spread or binpack, not {:?}",
                d.placement
            );
        }
        if d.images.is_empty() {
            bail!("[docker] needs at least one [[docker.images]]");
        }
        let mut images = Vec::new();
        for i in &d.images {
            if !valid_image_id(&i.id) {
                bail!("image id {:?} must start with imgc-", i.id);
            }
            if images.iter().any(|x: &DockerImage| x.id == i.id) {
                bail!("the image id {} is configured twice", i.id);
            }
            images.push(DockerImage {
                id: i.id.clone(),
                name: i.name.clone().unwrap_or_else(|| i.reference.clone()),
                android_version: i.android_version.clone(),
                description: i.description.clone(),
                reference: i.reference.clone(),
                privileged: i.privileged,
                args: i.args.clone(),
                env: i.env.clone(),
                data_path: i.data_path.clone(),
                adb_port: i.adb_port,
                run_as_root: i.run_as_root,
            });
        }
        let hosts = if d.hosts.is_empty() {
            let network = docker_hosts::network(&d.network, d.adb_ports.as_deref(), "docker")?;
            docker_hosts::legacy(d.socket.clone(), network)
        } else {
            if d.socket.is_some() || d.adb_ports.is_some() {
                bail!(
                    "with [[docker.hosts]], socket and adb_ports go on each host, not on [docker]"
                );
            }
            let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
            docker_hosts::hosts(&d.hosts, &d.network, &ids)?
        };
        let mut config = DockerConfig::new(images);
        config.hosts = hosts;
        config.adb = self.adb_server();
        config.boot_timeout = Duration::from_secs(d.boot_timeout_secs.max(1));
        config.stop_timeout = Duration::from_secs(d.stop_timeout_secs);
        config.name_prefix = d.name_prefix.clone();
        config.scrcpy = self.scrcpy_server()?;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudphone_backends::Network;

    fn parse(text: &str) -> anyhow::Result<BackendsFile> {
        let file: BackendsFile = toml::from_str(text)?;
        file.docker_config()?;
        file.adb_groups()?;
        file.scrcpy_server()?;
        Ok(file)
    }

    #[test]
    fn adb_groups_take_the_servers_settings() {
        let file = parse(
            r#"
            [adb]
            port = 5099
            [[adb.groups]]
            name = "lab"
            image_id = "imgc-lab"
            connect = ["10.0.0.5:5555"]
            [[adb.groups]]
            name = "bench"
            image_id = "imgc-bench"
            port = 6000
            "#,
        )
        .unwrap();
        let groups = file.adb_groups().unwrap();
        assert_eq!(groups[0].server.port, Some(5099));
        assert_eq!(groups[0].connect, ["10.0.0.5:5555"]);
        assert_eq!(groups[1].server.port, Some(6000));
        assert_eq!(groups[0].image.id, "imgc-lab");
        let twice = "[[adb.groups]]\nname = \"a\"\nimage_id = \"imgc-a\"\n";
        let err = format!("{:#}", parse(&format!("{twice}{twice}")).unwrap_err());
        assert!(err.contains("twice"), "{err}");
        let bad = "[[adb.groups]]\nname = \"a\"\nimage_id = \"lab\"\n";
        let err = format!("{:#}", parse(bad).unwrap_err());
        assert!(err.contains("imgc-"), "{err}");
    }

    #[test]
    fn a_redroid_host() {
        let file = parse(
            r#"
            [adb]
            port = 5099
            [docker]
            [[docker.images]]
            id = "imgc-redroid12"
            reference = "redroid/redroid:12.0.0_64only-latest"
            privileged = true
            args = ["androidboot.redroid_width=720"]
            "#,
        )
        .unwrap();
        assert!(file.sim);
        let d = file.docker_config().unwrap().unwrap();
        assert_eq!(d.hosts.len(), 1);
        assert_eq!(d.hosts[0].name, "default");
        assert_eq!(d.hosts[0].network, Network::Bridge);
        assert_eq!(
            d.hosts[0].max_phones, None,
            "the legacy host is not limited"
        );
        assert_eq!(d.adb.port, Some(5099));
        assert_eq!(d.images[0].data_path, "/data");
        assert_eq!(d.images[0].adb_port, 5555);
        assert_eq!(d.images[0].name, "redroid/redroid:12.0.0_64only-latest");
        assert!(
            !d.images[0].run_as_root,
            "commands run as shell unless allowed"
        );
        let allowed = parse(
            "[docker]\n[[docker.images]]\nid = \"imgc-r\"\nreference = \"r\"\nrun_as_root = true\n",
        )
        .unwrap();
        assert!(allowed.docker_config().unwrap().unwrap().images[0].run_as_root);
    }

    #[test]
    fn the_scrcpy_server_must_be_3_3_4s() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("scrcpy-server");
        std::fs::write(&jar, b"something else").unwrap();
        let text = format!(
            "[scrcpy]\nserver = {:?}\n[docker]\n[[docker.images]]\nid = \"imgc-x\"\nreference = \"x\"\n",
            jar.display().to_string()
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains("[scrcpy] server") && err.contains("sha256"),
            "{err}"
        );
        let missing = format!("[scrcpy]\nserver = {:?}\n", dir.path().join("none"));
        let err = format!("{:#}", parse(&missing).unwrap_err());
        assert!(err.contains("cannot read"), "{err}");
        let file = parse("[adb]\nport = 5099\n").unwrap();
        assert_eq!(file.scrcpy_server().unwrap(), None);
        assert_eq!(file.docker_config().unwrap().map(|d| d.scrcpy), None);
    }

    #[test]
    fn mistakes_are_named() {
        let image = "[[docker.images]]\nid = \"imgc-x\"\nreference = \"x\"\n";
        let cases = [
            ("[docker]\nnetwork = \"host\"\n", "needs docker.adb_ports"),
            (
                "[docker]\nnetwork = \"host\"\nadb_ports = \"9-1\"\n",
                "FIRST-LAST",
            ),
            ("[docker]\nadb_ports = \"1-9\"\n", "only for"),
            ("[docker]\nnetwork = \"wifi\"\n", "bridge, host or none"),
            ("[docker]\ncolour = 1\n", "unknown field"),
            ("[docker]\nplacement = \"random\"\n", "spread or binpack"),
            (
                "[docker]\nsocket = \"/s\"\n[[docker.hosts]]\nname = \"a\"\nsocket = \"/a\"\nmax_phones = 1\n",
                "go on each host",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", parse(&format!("{text}{image}")).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = format!("{:#}", parse("[docker]\n").unwrap_err());
        assert!(err.contains("at least one"), "{err}");
        let err = format!(
            "{:#}",
            parse("[docker]\n[[docker.images]]\nid = \"redroid\"\nreference = \"x\"\n")
                .unwrap_err()
        );
        assert!(err.contains("imgc-"), "{err}");
    }
}
