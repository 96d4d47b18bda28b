//! The system identity a CNXN carries (`<type>:<serial>:<properties>`, protocol.txt): the
//! device's banner we build (`device::ro.product.name=...;ro.product.model=...;
//! ro.product.device=...;features=...`) and the host's we parse, with the feature names adb
//! negotiates. adb reads the banner by splitting on `:`, `;`, `=` and `,`, so values holding
//! one of those would shift every later field: they are replaced when building.

use thiserror::Error;

use super::packet::MAX_PAYLOAD_V1;

/// Shell protocol v2 (`shell,v2,...`): separate stdout and stderr, exit codes, stdin close.
pub const FEATURE_SHELL_V2: &str = "shell_v2";
/// `cmd` exists on the device: `adb install` streams to `exec:cmd package install -S SIZE`
/// instead of pushing to /data/local/tmp and running `pm install`.
pub const FEATURE_CMD: &str = "cmd";
/// Sync STA2/LST2 (64-bit sizes, errno on failure) instead of STAT.
pub const FEATURE_STAT_V2: &str = "stat_v2";
/// Sync LIS2/DNT2 instead of LIST/DENT.
pub const FEATURE_LS_V2: &str = "ls_v2";
/// adbd creates a pushed file's missing parents itself; without it (and with shell_v2) the
/// client runs `mkdir -p` through the shell first.
pub const FEATURE_FIXED_PUSH_MKDIR: &str = "fixed_push_mkdir";
/// The device applies a pushed symlink's timestamp.
pub const FEATURE_FIXED_PUSH_SYMLINK_TIMESTAMP: &str = "fixed_push_symlink_timestamp";
pub const FEATURE_APEX: &str = "apex";
/// `abb:` (Android binder bridge, `adb abb`).
pub const FEATURE_ABB: &str = "abb";
/// `abb_exec:`; when both sides have it `adb install` streams through
/// `abb_exec:package\0install\0-S\0SIZE` rather than `exec:cmd package`.
pub const FEATURE_ABB_EXEC: &str = "abb_exec";
pub const FEATURE_REMOUNT_SHELL: &str = "remount_shell";
/// adb 31's windowed flow control (many WRTEs in flight); not spoken here, see
/// `session` for why one WRTE at a time is what adb 29 needs.
pub const FEATURE_DELAYED_ACK: &str = "delayed_ack";

/// What a simulated phone advertises by default: what Debian's adb 29.0.6 can use and this
/// crate's helpers serve (shell v2 with exit codes, the v2 sync messages, streamed installs
/// through `exec:cmd`, parents made on push).
pub const DEFAULT_FEATURES: &[&str] = &[
    FEATURE_SHELL_V2,
    FEATURE_CMD,
    FEATURE_STAT_V2,
    FEATURE_LS_V2,
    FEATURE_FIXED_PUSH_MKDIR,
    FEATURE_FIXED_PUSH_SYMLINK_TIMESTAMP,
];

/// Features that describe the transport between the host and whoever answers it rather than a
/// service of the phone: a relay must not pass the phone's on, since it is the relay that
/// speaks the transport.
pub const TRANSPORT_FEATURES: &[&str] = &[FEATURE_DELAYED_ACK];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BannerError {
    #[error("the banner is {0} bytes, over the {MAX_PAYLOAD_V1} a CNXN may carry")]
    TooLong(usize),
}

/// What the device says about itself in its CNXN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBanner {
    /// `ro.product.name` (adb devices -l: `product:`).
    pub product_name: String,
    /// `ro.product.model` (`model:`).
    pub model: String,
    /// `ro.product.device` (`device:`).
    pub device: String,
    pub features: Vec<String>,
}

impl DeviceBanner {
    /// A banner with [`DEFAULT_FEATURES`].
    pub fn new(product_name: &str, model: &str, device: &str) -> DeviceBanner {
        DeviceBanner {
            product_name: product_name.to_string(),
            model: model.to_string(),
            device: device.to_string(),
            features: DEFAULT_FEATURES.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// The CNXN payload. Fails only when it would not fit the 4096 bytes a host accepts before
    /// it knows the device's maximum.
    pub fn encode(&self) -> Result<String, BannerError> {
        let features: Vec<String> = self
            .features
            .iter()
            .map(|f| clean(f))
            .filter(|f| !f.is_empty())
            .collect();
        let s = format!(
            "device::ro.product.name={};ro.product.model={};ro.product.device={};features={}",
            clean(&self.product_name),
            clean(&self.model),
            clean(&self.device),
            features.join(",")
        );
        if s.len() > MAX_PAYLOAD_V1 as usize {
            return Err(BannerError::TooLong(s.len()));
        }
        Ok(s)
    }
}

/// `value` without the separators adb splits on, spaces (which `adb devices -l` prints
/// between fields) and control characters.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if matches!(c, ':' | ';' | '=' | ',' | ' ') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// A parsed system identity, as adb's `parse_banner` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Banner {
    /// `host`, `device`, `bootloader`, ...
    pub kind: String,
    pub serial: String,
    /// The `key=value` properties in order, `features` among them.
    pub properties: Vec<(String, String)>,
    pub features: Vec<String>,
}

impl Banner {
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|f| f == name)
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a CNXN payload (trailing NULs ignored, as old clients sent C strings). Like adb, a
/// property that is not exactly `key=value` is skipped and a later `features` replaces an
/// earlier one.
pub fn parse_banner(payload: &[u8]) -> Banner {
    let end = payload
        .iter()
        .rposition(|b| *b != 0)
        .map(|i| i + 1)
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&payload[..end]);
    let mut pieces = text.split(':');
    let mut banner = Banner {
        kind: pieces.next().unwrap_or_default().to_string(),
        serial: pieces.next().unwrap_or_default().to_string(),
        ..Banner::default()
    };
    if let Some(props) = pieces.next() {
        for prop in props.split(';').filter(|p| !p.is_empty()) {
            let kv: Vec<&str> = prop.split('=').collect();
            let [key, value] = kv[..] else { continue };
            if key == "features" {
                banner.features = value
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            banner.properties.push((key.to_string(), value.to_string()));
        }
    }
    banner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_banner_has_adbd_shape() {
        let b = DeviceBanner::new("cloudphone", "Cloud Phone", "cp1");
        assert_eq!(
            b.encode().unwrap(),
            "device::ro.product.name=cloudphone;ro.product.model=Cloud_Phone;\
             ro.product.device=cp1;features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir,\
             fixed_push_symlink_timestamp"
        );
    }

    #[test]
    fn device_banner_round_trips_through_the_parser() {
        let mut b = DeviceBanner::new("a:b;c=d", "m,1", "dev\n");
        b.features = vec!["shell_v2".into(), "x;y".into(), String::new()];
        let parsed = parse_banner(b.encode().unwrap().as_bytes());
        assert_eq!(parsed.kind, "device");
        assert_eq!(parsed.serial, "");
        assert_eq!(parsed.property("ro.product.name"), Some("a_b_c_d"));
        assert_eq!(parsed.property("ro.product.model"), Some("m_1"));
        assert_eq!(parsed.property("ro.product.device"), Some("dev_"));
        assert_eq!(parsed.features, ["shell_v2", "x_y"]);
    }

    #[test]
    fn banner_too_long_is_refused() {
        let mut b = DeviceBanner::new("p", "m", "d");
        b.features = vec!["f".repeat(5000)];
        assert!(matches!(b.encode(), Err(BannerError::TooLong(_))));
    }

    #[test]
    fn parses_adb_29_host_banner() {
        let host = b"host::features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir,apex,abb,\
fixed_push_symlink_timestamp,abb_exec,remount_shell\0";
        let b = parse_banner(host);
        assert_eq!(b.kind, "host");
        assert!(b.has_feature("shell_v2"));
        assert!(b.has_feature("abb_exec"));
        assert!(!b.has_feature("delayed_ack"));
        assert_eq!(b.features.len(), 10);
    }

    #[test]
    fn parser_tolerates_odd_banners() {
        assert_eq!(parse_banner(b"").kind, "");
        let b = parse_banner(b"host:serial:a=1;;bad;c=d=e;features=;features=x,,y;");
        assert_eq!(b.serial, "serial");
        assert_eq!(b.property("a"), Some("1"));
        assert_eq!(b.property("c"), None);
        assert_eq!(b.features, ["x", "y"]);
        let b = parse_banner(&[0xff, b':', 0xfe, b':', b'k', b'=', 0x80]);
        assert_eq!(b.properties.len(), 1);
    }
}
