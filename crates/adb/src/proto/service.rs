//! The service names a host OPENs (AOSP `adb/SERVICES.TXT`, `daemon/services.cpp`), parsed the
//! way adbd 29 reads them, so that a device implementation matches on a type rather than on
//! prefixes. Unknown names are kept whole. Which names a client may open at all is an
//! allowlist, [`ServicePolicy`] over [`ServiceName::is_device_service`], one for every device
//! (the relay applies it before a name reaches an ADB server, which would answer `host...`
//! names itself).

/// The shell argument spelling of the shell protocol (v2).
const ARG_V2: &str = "v2";

/// How a shell's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellProtocol {
    /// Raw bytes, stdout and stderr merged, no exit code (`shell:`, `exec:`).
    Raw,
    /// Shell protocol v2 packets (`shell,v2,...:`).
    V2,
}

/// A command to run, from `shell[,arg...]:[command]` or `exec:command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellRequest {
    /// Empty for an interactive shell.
    pub command: String,
    pub protocol: ShellProtocol,
    /// Whether the host asked for a terminal (`pty`, or the default of an empty command).
    pub pty: bool,
    /// `TERM=...`; adbd's default is `dumb`.
    pub term: Option<String>,
    /// `exec:`: no terminal ever and no shell protocol (what `adb exec-out` and streamed
    /// installs use, for binary output).
    pub exec: bool,
}

/// A parsed service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceName {
    Shell(ShellRequest),
    /// `sync:`: the file sync protocol.
    Sync,
    /// `reboot:[target]`.
    Reboot(String),
    Root,
    Unroot,
    /// `remount:[args]`.
    Remount(String),
    /// `tcpip:PORT`.
    Tcpip(u16),
    Usb,
    /// `reverse:...` (forwards from the phone to the host).
    Reverse(String),
    /// `abb:` or `abb_exec:` with the arguments it carries, NUL-separated on the wire.
    Abb {
        exec: bool,
        args: Vec<String>,
    },
    /// `framebuffer:`.
    Framebuffer,
    /// `tcp:PORT`, `localabstract:NAME` and other socket specs (`adb forward`).
    Socket(String),
    Other(String),
}

impl ServiceName {
    /// Parses an OPEN payload. Trailing NULs are dropped, as adbd does (hosts used to send C
    /// strings); bytes that are not UTF-8 become U+FFFD.
    pub fn parse(payload: &[u8]) -> ServiceName {
        let end = payload
            .iter()
            .rposition(|b| *b != 0)
            .map(|i| i + 1)
            .unwrap_or(0);
        let name = String::from_utf8_lossy(&payload[..end]).into_owned();
        parse_str(name)
    }

    /// The shell request, if this is one.
    pub fn shell(&self) -> Option<&ShellRequest> {
        match self {
            ServiceName::Shell(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this is one of the services that act only inside the phone, with no more
    /// power than its shell has: shells and `exec:`, `sync:`, `abb:`/`abb_exec:`,
    /// `framebuffer:`, sockets on the phone (`tcp:`, `localabstract:`, `jdwp:`... for `adb
    /// forward`) and `track-jdwp`/`track-app`. Anything else is not: `root:`, `unroot:`,
    /// `remount:` and `reboot:` change the phone itself (see [`ServicePolicy`]); `reverse:`
    /// makes the phone's adbd open connections on whatever host carries the transport (a
    /// relay's ADB server, inside the control plane); `tcpip:` and `usb:` restart adbd
    /// elsewhere; and every other name, `host:...` above all (an ADB server answers those
    /// itself), is unknown.
    pub fn is_device_service(&self) -> bool {
        match self {
            ServiceName::Shell(_)
            | ServiceName::Sync
            | ServiceName::Abb { .. }
            | ServiceName::Framebuffer
            | ServiceName::Socket(_) => true,
            ServiceName::Other(name) => TRACKERS.contains(&name.as_str()),
            ServiceName::Reboot(_)
            | ServiceName::Root
            | ServiceName::Unroot
            | ServiceName::Remount(_)
            | ServiceName::Tcpip(_)
            | ServiceName::Usb
            | ServiceName::Reverse(_) => false,
        }
    }
}

/// Device services without arguments that [`ServiceName::parse`] keeps as `Other`: the lists
/// of debuggable processes Android Studio watches.
const TRACKERS: &[&str] = &["track-jdwp", "track-app"];

/// Whether an ADB server would answer `service` itself instead of passing it to the device it
/// is connected to: every name starting with `host` (`host:`, `host-serial:`,
/// `host-transport-id:`, `host-usb:`, `host-local:`; adb 29's `smart_socket_enqueue`). Such a
/// name must never reach a shared server: it lists and reaches other devices (`host:devices`,
/// `host:transport:OTHER`), kills the server (`host:kill`) or makes it connect out
/// (`host:connect:`). Checked on the raw name, before any parsing, so that no spelling can
/// slip past a parser that reads it otherwise.
pub fn is_host_service(service: &[u8]) -> bool {
    service.starts_with(b"host")
}

/// Which services a client may open on a phone. Device services
/// ([`ServiceName::is_device_service`]) always, except sockets in the phone's network namespace
/// when that namespace is the host's ([`ServicePolicy::host_network`]); the ones that change the
/// phone itself only as the owner allows. [`ServicePolicy::default`] allows none of them.
/// `reverse:`, `tcpip:`, `usb:`, `host...` and unknown names are never allowed (see
/// `is_device_service` for why).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServicePolicy {
    /// `root:` and `unroot:` (adbd restarts as root, or back as `shell`).
    pub root: bool,
    /// `remount:` (system partitions writable; needs root on the phone).
    pub remount: bool,
    /// `reboot:[target]`.
    pub reboot: bool,
    /// The phone shares the network namespace of the host it runs on (a container on the
    /// host's network): `adb forward` to `tcp:PORT` (adbd connects to loopback) or
    /// `localabstract:NAME` (abstract Unix sockets belong to the network namespace) would reach
    /// the host's own services, the control plane's, so they are refused. Sockets named by a
    /// path (`localfilesystem:`, `localreserved:`, `local:`) are in the phone's own mount
    /// namespace and stay allowed, as do `jdwp:` and `dev:`.
    pub host_network: bool,
}

impl ServicePolicy {
    /// Device services only.
    pub const DEVICE_ONLY: ServicePolicy = ServicePolicy {
        root: false,
        remount: false,
        reboot: false,
        host_network: false,
    };

    /// Whether `name` may be opened.
    pub fn allows(&self, name: &ServiceName) -> bool {
        match name {
            ServiceName::Root | ServiceName::Unroot => self.root,
            ServiceName::Remount(_) => self.remount,
            ServiceName::Reboot(_) => self.reboot,
            ServiceName::Socket(spec) if self.host_network && in_network_namespace(spec) => false,
            other => other.is_device_service(),
        }
    }

    /// Whether the OPEN payload `service` may be opened: never a `host` name (checked on the
    /// bytes), otherwise as [`ServicePolicy::allows`] says of its parse.
    pub fn allows_raw(&self, service: &[u8]) -> bool {
        !is_host_service(service) && self.allows(&ServiceName::parse(service))
    }
}

/// Whether the socket `spec` (`tcp:8080`, `localabstract:x`) is reached through the device's
/// network namespace.
fn in_network_namespace(spec: &str) -> bool {
    spec.starts_with("tcp:") || spec.starts_with("localabstract:")
}

fn parse_str(name: String) -> ServiceName {
    if let Some(rest) = name.strip_prefix("shell") {
        // adbd accepts "shell" followed by ',' or ':' only; "shellfoo:" is not a shell.
        if (rest.starts_with(',') || rest.starts_with(':'))
            && let Some(req) = parse_shell(rest)
        {
            return ServiceName::Shell(req);
        }
        return ServiceName::Other(name);
    }
    if let Some(cmd) = name.strip_prefix("exec:") {
        return ServiceName::Shell(ShellRequest {
            command: cmd.to_string(),
            protocol: ShellProtocol::Raw,
            pty: false,
            term: None,
            exec: true,
        });
    }
    if name.starts_with("sync:") {
        return ServiceName::Sync;
    }
    if let Some(target) = name.strip_prefix("reboot:") {
        return ServiceName::Reboot(target.to_string());
    }
    if name.starts_with("root:") {
        return ServiceName::Root;
    }
    if name.starts_with("unroot:") {
        return ServiceName::Unroot;
    }
    if let Some(args) = name.strip_prefix("remount:") {
        return ServiceName::Remount(args.to_string());
    }
    if let Some(port) = name.strip_prefix("tcpip:") {
        return match port.trim().parse::<u16>() {
            Ok(p) => ServiceName::Tcpip(p),
            Err(_) => ServiceName::Other(name),
        };
    }
    if name.starts_with("usb:") {
        return ServiceName::Usb;
    }
    if let Some(rest) = name.strip_prefix("reverse:") {
        return ServiceName::Reverse(rest.to_string());
    }
    if name.starts_with("framebuffer:") {
        return ServiceName::Framebuffer;
    }
    for (prefix, exec) in [("abb_exec:", true), ("abb:", false)] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return ServiceName::Abb {
                exec,
                args: rest.split('\0').map(str::to_string).collect(),
            };
        }
    }
    for prefix in [
        "tcp:",
        "localabstract:",
        "localreserved:",
        "localfilesystem:",
        "local:",
        "jdwp:",
        "dev:",
    ] {
        if name.starts_with(prefix) {
            return ServiceName::Socket(name);
        }
    }
    ServiceName::Other(name)
}

/// `rest` is what follows "shell": `[,arg...]:command`.
fn parse_shell(rest: &str) -> Option<ShellRequest> {
    let colon = rest.find(':')?;
    let (args, command) = (&rest[..colon], &rest[colon + 1..]);
    let mut req = ShellRequest {
        command: command.to_string(),
        protocol: ShellProtocol::Raw,
        // adbd: a terminal for an interactive shell, raw for a command, unless asked.
        pty: command.is_empty(),
        term: None,
        exec: false,
    };
    for arg in args.split(',') {
        match arg {
            "raw" => req.pty = false,
            "pty" => req.pty = true,
            ARG_V2 => req.protocol = ShellProtocol::V2,
            _ => {
                if let Some(term) = arg.strip_prefix("TERM=") {
                    req.term = Some(term.to_string());
                }
                // Anything else is ignored, as adbd does, to leave room for new arguments.
            }
        }
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(s: &str) -> ShellRequest {
        match ServiceName::parse(s.as_bytes()) {
            ServiceName::Shell(r) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn shell_names_as_adb_29_sends_them() {
        let r = shell("shell,v2,TERM=xterm-256color,raw:echo hi\0");
        assert_eq!(r.command, "echo hi");
        assert_eq!(r.protocol, ShellProtocol::V2);
        assert!(!r.pty);
        assert_eq!(r.term.as_deref(), Some("xterm-256color"));

        let r = shell("shell,v2,TERM=xterm,pty:");
        assert!(r.pty && r.command.is_empty());

        let r = shell("shell:ls -l");
        assert_eq!(r.protocol, ShellProtocol::Raw);
        assert!(!r.pty);

        // Interactive without arguments: a terminal.
        assert!(shell("shell:").pty);
        // The command keeps its colons.
        assert_eq!(shell("shell,v2:a:b").command, "a:b");

        let r = shell("exec:cmd package 'install' -S 1234");
        assert!(r.exec && !r.pty);
        assert_eq!(r.protocol, ShellProtocol::Raw);
        assert_eq!(r.command, "cmd package 'install' -S 1234");
    }

    #[test]
    fn other_services() {
        assert_eq!(ServiceName::parse(b"sync:"), ServiceName::Sync);
        assert_eq!(
            ServiceName::parse(b"reboot:bootloader"),
            ServiceName::Reboot("bootloader".into())
        );
        assert_eq!(
            ServiceName::parse(b"reboot:"),
            ServiceName::Reboot("".into())
        );
        assert_eq!(ServiceName::parse(b"root:"), ServiceName::Root);
        assert_eq!(ServiceName::parse(b"tcpip:5555"), ServiceName::Tcpip(5555));
        assert!(matches!(
            ServiceName::parse(b"tcpip:x"),
            ServiceName::Other(_)
        ));
        assert_eq!(
            ServiceName::parse(b"abb_exec:package\0install\0-S\x0012"),
            ServiceName::Abb {
                exec: true,
                args: vec!["package".into(), "install".into(), "-S".into(), "12".into()]
            }
        );
        assert_eq!(
            ServiceName::parse(b"tcp:8080"),
            ServiceName::Socket("tcp:8080".into())
        );
        assert_eq!(
            ServiceName::parse(b"shellfoo:x"),
            ServiceName::Other("shellfoo:x".into())
        );
        assert_eq!(
            ServiceName::parse(b"shell"),
            ServiceName::Other("shell".into())
        );
        assert_eq!(ServiceName::parse(b""), ServiceName::Other(String::new()));
    }

    /// What a phone's user may open, and what an ADB server would answer itself.
    #[test]
    fn the_allowlist() {
        let device_only = ServicePolicy::default();
        assert_eq!(device_only, ServicePolicy::DEVICE_ONLY);
        for ok in [
            "shell:",
            "shell:ls -l",
            "shell,v2,TERM=xterm,raw:echo hi",
            "shell,v2,pty:",
            "exec:cat /x",
            "sync:",
            "abb:package\0list",
            "abb_exec:package\0install\0-S\x0012",
            "framebuffer:",
            "tcp:8080",
            "tcp:10.0.0.1:80",
            "localabstract:chrome_devtools_remote",
            "localreserved:x",
            "localfilesystem:/dev/socket/x",
            "local:x",
            "jdwp:1234",
            "dev:/dev/null",
            "track-jdwp",
            "track-app",
        ] {
            assert!(device_only.allows_raw(ok.as_bytes()), "{ok}");
            assert!(
                ServiceName::parse(ok.as_bytes()).is_device_service(),
                "{ok}"
            );
        }
        for refused in [
            // What an ADB server answers itself, in every spelling it reads.
            "host:devices-l",
            "host:devices",
            "host:transport:127.0.0.1:5555",
            "host:transport-any",
            "host:kill",
            "host:connect:10.0.0.1:5555",
            "host:version",
            "host-serial:127.0.0.1:5555:shell:id",
            "host-transport-id:3:shell:id",
            "host-usb:shell:id",
            "host-local:shell:id",
            "hostfoo",
            "host",
            // The phone itself, unless the owner allows it.
            "root:",
            "unroot:",
            "remount:",
            "reboot:",
            "reboot:bootloader",
            // Never.
            "reverse:forward:tcp:1:tcp:2",
            "tcpip:5555",
            "usb:",
            "nosuch:",
            "",
            "shell",
            "shellfoo:x",
            "track-jdwp-more",
            // A device service's name after a host prefix is still a host request.
            "host:shell:id",
        ] {
            assert!(!device_only.allows_raw(refused.as_bytes()), "{refused}");
        }
        assert!(is_host_service(b"host-serial:x:features"));
        assert!(!is_host_service(b"shell:host"));

        let owner = ServicePolicy {
            root: true,
            remount: true,
            reboot: true,
            host_network: false,
        };
        for ok in ["root:", "unroot:", "remount:", "reboot:", "reboot:recovery"] {
            assert!(owner.allows_raw(ok.as_bytes()), "{ok}");
        }
        for refused in [
            "host:kill",
            "reverse:list-forward",
            "tcpip:5555",
            "usb:",
            "x:",
        ] {
            assert!(!owner.allows_raw(refused.as_bytes()), "{refused}");
        }
        let only_reboot = ServicePolicy {
            reboot: true,
            ..ServicePolicy::default()
        };
        assert!(only_reboot.allows_raw(b"reboot:"));
        assert!(!only_reboot.allows_raw(b"root:"));
        assert!(!only_reboot.allows_raw(b"remount:"));
    }

    /// A phone on its host's network: forwards into that network are refused (they would reach
    /// the control plane's loopback services and abstract sockets); everything else is as for
    /// any phone. A phone with a network of its own keeps them.
    #[test]
    fn forwards_into_the_hosts_network_are_refused() {
        let host = ServicePolicy {
            host_network: true,
            root: true,
            ..ServicePolicy::default()
        };
        for refused in [
            "tcp:5432",
            "tcp:9723",
            "tcp:127.0.0.1:5432",
            "localabstract:chrome_devtools_remote",
            "localabstract:/tmp/.X11-unix/X0",
        ] {
            assert!(!host.allows_raw(refused.as_bytes()), "{refused}");
            assert!(
                ServicePolicy::default().allows_raw(refused.as_bytes()),
                "{refused}"
            );
        }
        for ok in [
            "shell:id",
            "sync:",
            "exec:cat /x",
            "root:",
            "localfilesystem:/dev/socket/x",
            "localreserved:x",
            "local:x",
            "jdwp:1234",
            "dev:/dev/null",
            "track-jdwp",
            // Not a socket spec: a shell command that mentions one.
            "shell:echo tcp:5432",
        ] {
            assert!(host.allows_raw(ok.as_bytes()), "{ok}");
        }
        for refused in ["host:kill", "reverse:forward:tcp:1:tcp:2", "tcpip:5555"] {
            assert!(!host.allows_raw(refused.as_bytes()), "{refused}");
        }
    }
}
