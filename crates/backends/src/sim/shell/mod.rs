//! The simulated phone's shell: a small interpreter for the scripts RunCommand carries. It never
//! runs anything on the host; every builtin acts on the phone's state and on files under its data
//! dir, through [`super::paths`].
//!
//! Grammar: commands separated by `;`, newlines, `&&` and `||` (left to right, as `sh` does);
//! words with single quotes, double quotes and backslash escapes; `$?`, `$NAME` and `${NAME}`
//! expand (a small fixed environment plus `PWD`); `#` starts a comment. Pipes, redirections,
//! background jobs, subshells and command substitution are refused as syntax errors rather than
//! misread. There is no globbing.
//!
//! Builtins: `echo`, `getprop`, `pm list packages`, `pm path`, `pm install`, `pm uninstall`,
//! `cmd package ...` and `cmd activity ...` (as `pm` and `am`), `am start`, `am force-stop`,
//! `ls`, `cat`, `id`, `sleep`, `exit`, `true`, `false`, `:`, `pwd`, `cd`, `mkdir`, `touch`, `rm`,
//! `input` (tap, swipe, draganddrop, text, keyevent) and `dumpsys` (input, window, power), which
//! drive and read the live screen's model (`input.rs`).
//! Any other name prints `sh: NAME: not found` and exits 127. Output is stdout and stderr
//! together in the order written (RunCommand's), with the stderr parts marked (`adb shell`
//! separates them), kept up to a cap (`Session::run`) or passed on as it is made
//! (`Session::stream`, `adb shell`: `output.rs`). File work runs on blocking trips bounded per
//! phone (`sim/work.rs`). A [`Session`] keeps the working directory and `$?` from one
//! script to the next (an interactive `adb shell`).

mod cat;
mod files;
mod input;
mod output;
mod parse;

use std::io;
use std::time::Duration;

use cloudphone_backend::CommandOutput;

use super::packages;
use super::paths;
use super::phone::{PhoneDir, PhoneState};
use files::{FsCtx, errno_text, ls, mkdir, path_error_text, rm, touch};
use output::Output;
pub(crate) use output::OutputSink;
use parse::{Command, Conn, Part, Word, parse};

/// Output kept per command: generous for any real use, bounded so `cat` of a huge file cannot
/// take the server's memory. A streamed script (`adb shell`) is not cut: it holds a chunk at a
/// time, and this bounds only what one builtin that lists at once (`ls`) may hold.
pub const MAX_OUTPUT: usize = 16 << 20;

/// What `id` prints in `adb shell` on a recent Android.
const ID: &str = "uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),\
1011(adb),1015(sdcard_rw),1028(sdcard_r),1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),\
3002(net_bt),3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs) \
context=u:r:shell:s0";

/// Exit status of a script that does not parse (as `bash` and `dash` use).
const SYNTAX_ERROR: i32 = 2;
const NOT_FOUND: i32 = 127;
/// What Android's `cmd`-style tools (`pm`, `am`) exit with on a usage error (-1).
const USAGE: i32 = 255;
/// What `cmd` exits with when there is no such service.
const CMD_NO_SERVICE: i32 = 20;

/// Runs `script` on `phone`, keeping at most `cap` bytes of output. Err only when the phone's
/// own state cannot be read or written; everything a script can get wrong is in the output.
pub(crate) async fn run(phone: &PhoneDir, script: &str, cap: usize) -> io::Result<CommandOutput> {
    let ran = Session::new(phone).run(script, cap).await?;
    Ok(CommandOutput {
        output: ran.output,
        exit_code: ran.status,
    })
}

/// Whether `src` parses as a script (fuzz/fuzz_targets/sim_shell.rs drives the parser through
/// this; the interpreter touches the phone's files, so it is not fuzzed).
#[doc(hidden)]
pub fn fuzz_parse(src: &str) -> bool {
    parse(src).is_ok()
}

/// The words of the first command of `script` after expansion of quotes and escapes (not of
/// variables), or `None` when it does not parse: for the ADB gateway, which answers a few
/// commands itself (a streamed install reads the phone's stdin, which scripts do not have).
pub(crate) fn first_command_words(script: &str) -> Option<Vec<String>> {
    let commands = parse(script).ok()?;
    let first = commands.first()?;
    let mut argv = Vec::new();
    for w in &first.words {
        let mut s = String::new();
        for part in &w.parts {
            match part {
                Part::Lit(l) => s.push_str(l),
                Part::Var(_) => return None,
            }
        }
        argv.push(s);
    }
    (commands.len() == 1).then_some(argv)
}

/// What one script did, its output kept. `output` is stdout and stderr in the order they were
/// written (what RunCommand reports); `stderr` says which byte ranges of it were stderr (the
/// marks a streamed script's sink separates them by, under shell protocol v2).
pub(crate) struct Ran {
    pub output: Vec<u8>,
    // RunCommand merges the two and runs one script: only the tests read these.
    #[cfg_attr(not(test), allow(dead_code))]
    pub stderr: Vec<(usize, usize)>,
    pub status: i32,
    /// The script ran `exit`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub exited: bool,
}

impl Ran {
    /// The output as (is stderr, bytes) pieces, in order.
    #[cfg(test)]
    pub fn pieces(&self) -> Vec<(bool, &[u8])> {
        output::pieces(&self.output, &self.stderr)
    }
}

/// How a streamed script ended (its output went to the sink as it was made).
pub(crate) struct Streamed {
    pub status: i32,
    /// The script ran `exit`: an interactive shell ends.
    pub exited: bool,
    /// The sink took no more (the host closed the stream); nothing ran after.
    pub gone: bool,
}

/// A shell that lives across scripts: its working directory and `$?` carry from one to the
/// next (an interactive `adb shell`, one line at a time).
pub(crate) struct Session<'a> {
    phone: &'a PhoneDir,
    cwd: String,
    status: i32,
}

impl<'a> Session<'a> {
    pub fn new(phone: &'a PhoneDir) -> Session<'a> {
        Session {
            phone,
            cwd: "/".into(),
            status: 0,
        }
    }

    pub fn cwd(&self) -> &str {
        &self.cwd
    }

    /// Runs `script`, keeping at most `cap` bytes of its output.
    pub async fn run(&mut self, script: &str, cap: usize) -> io::Result<Ran> {
        let (flow, out) = self.script(script, Output::new(cap), None).await?;
        let (output, stderr) = out.into_parts();
        let (status, exited) = match flow {
            Flow::Next(s) => (s, false),
            Flow::Exit(s) => (s, true),
            Flow::Gone => (self.status, true),
        };
        Ok(Ran {
            output,
            stderr,
            status,
            exited,
        })
    }

    /// Runs `script`, its output passed to `sink` as it is made (after every command, and
    /// every chunk of a file `cat` reads), so the shell holds little whatever the output's
    /// size, and the sink's pace is the script's.
    pub async fn stream(
        &mut self,
        script: &str,
        sink: &mut dyn OutputSink,
    ) -> io::Result<Streamed> {
        let out = Output::metered(MAX_OUTPUT, self.phone.work().clone());
        let (flow, _) = self.script(script, out, Some(sink)).await?;
        let (status, exited, gone) = match flow {
            Flow::Next(s) => (s, false, false),
            Flow::Exit(s) => (s, true, false),
            Flow::Gone => (self.status, true, true),
        };
        Ok(Streamed {
            status,
            exited,
            gone,
        })
    }

    async fn script<'s>(
        &'s mut self,
        script: &str,
        out: Output,
        sink: Option<&'s mut (dyn OutputSink + 's)>,
    ) -> io::Result<(Flow, Output)> {
        let cap = out.room();
        let mut shell = Shell {
            phone: self.phone,
            out,
            sink,
            cwd: std::mem::take(&mut self.cwd),
            status: self.status,
        };
        let ran = match parse(script) {
            Ok(commands) => shell.run_all(&commands).await,
            Err(msg) => {
                shell.out.err_line(&format!("sh: syntax error: {msg}"));
                Ok(Flow::Next(SYNTAX_ERROR))
            }
        };
        self.cwd = std::mem::take(&mut shell.cwd);
        let mut flow = ran?;
        if let Flow::Next(s) | Flow::Exit(s) = flow {
            self.status = s;
        }
        if shell.out.truncated {
            // Past the cap, on stderr.
            shell.out.err_note(&format!(
                "\n[output truncated: the simulated shell keeps at most {cap} bytes]\n"
            ));
        }
        if !shell.flush().await {
            flow = Flow::Gone;
        }
        Ok((flow, shell.out))
    }
}

enum Flow {
    Next(i32),
    Exit(i32),
    /// The output's sink took no more (the host closed the stream): nothing more runs.
    Gone,
}

struct Shell<'a> {
    phone: &'a PhoneDir,
    out: Output,
    /// Where output goes as it is made; `None` keeps it in `out`.
    sink: Option<&'a mut dyn OutputSink>,
    cwd: String,
    status: i32,
}

fn env(name: &str) -> Option<&'static str> {
    Some(match name {
        "HOME" => "/",
        "PATH" => {
            "/product/bin:/apex/com.android.runtime/bin:/apex/com.android.art/bin:\
/system_ext/bin:/system/bin:/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin"
        }
        "SHELL" => "/system/bin/sh",
        "USER" | "LOGNAME" => "shell",
        "HOSTNAME" => "localhost",
        "ANDROID_ROOT" => "/system",
        "ANDROID_DATA" => "/data",
        "EXTERNAL_STORAGE" => "/sdcard",
        "TMPDIR" => "/data/local/tmp",
        _ => return None,
    })
}

impl Shell<'_> {
    async fn run_all(&mut self, commands: &[Command]) -> io::Result<Flow> {
        for command in commands {
            let skip = match command.conn {
                Conn::Always => false,
                Conn::IfOk => self.status != 0,
                Conn::IfFailed => self.status == 0,
            };
            if skip {
                continue;
            }
            let argv = self.expand(&command.words);
            let flow = self.exec(&argv).await?;
            if !self.flush().await {
                return Ok(Flow::Gone);
            }
            match flow {
                Flow::Next(status) => self.status = status,
                exit => return Ok(exit),
            }
        }
        Ok(Flow::Next(self.status))
    }

    /// Streaming, passes what the output holds to the sink; false when the sink took no
    /// more. Keeping, does nothing.
    async fn flush(&mut self) -> bool {
        match self.sink.as_deref_mut() {
            Some(sink) => self.out.drain_to(sink).await,
            None => true,
        }
    }

    fn expand(&self, words: &[Word]) -> Vec<String> {
        let mut argv = Vec::new();
        for w in words {
            let mut s = String::new();
            for part in &w.parts {
                match part {
                    Part::Lit(l) => s.push_str(l),
                    Part::Var(v) if v == "?" => s.push_str(&self.status.to_string()),
                    Part::Var(v) if v == "PWD" => s.push_str(&self.cwd),
                    Part::Var(v) => s.push_str(env(v).unwrap_or("")),
                }
            }
            if w.quoted || !s.is_empty() {
                argv.push(s);
            }
        }
        argv
    }

    async fn exec(&mut self, argv: &[String]) -> io::Result<Flow> {
        let Some(name) = argv.first() else {
            return Ok(Flow::Next(self.status));
        };
        let args = &argv[1..];
        // Scripts often name tools by their full path on the phone.
        let base = ["/system/bin/", "/system/xbin/", "/bin/"]
            .iter()
            .find_map(|dir| name.strip_prefix(dir))
            .filter(|b| !b.is_empty() && !b.contains('/'))
            .unwrap_or(name);
        let status = match base {
            "exit" => return Ok(Flow::Exit(self.exit(args))),
            "echo" => self.echo(args),
            "true" | ":" => 0,
            "false" => 1,
            "pwd" => {
                let cwd = self.cwd.clone();
                self.out.line(&cwd);
                0
            }
            "id" => self.id(args),
            "getprop" => self.getprop(args).await?,
            "pm" => self.pm(args).await?,
            "cmd" => self.cmd(args).await?,
            "am" => self.am(args).await?,
            "sleep" => self.sleep(args).await,
            "cd" => self.cd(args).await?,
            "ls" => self.fs(args, ls).await?,
            "cat" => return self.cat(args).await,
            "mkdir" => self.fs(args, mkdir).await?,
            "touch" => self.fs(args, touch).await?,
            "rm" => self.fs(args, rm).await?,
            "input" => self.input(args).await?,
            "dumpsys" => self.dumpsys(args).await?,
            _ => {
                self.out.err_line(&format!("sh: {name}: not found"));
                NOT_FOUND
            }
        };
        Ok(Flow::Next(status))
    }

    fn exit(&mut self, args: &[String]) -> i32 {
        match args.first() {
            None => self.status,
            Some(n) => match n.parse::<i64>() {
                Ok(n) => (n & 0xff) as i32,
                Err(_) => {
                    self.out.err_line(&format!("sh: exit: {n}: bad number"));
                    SYNTAX_ERROR
                }
            },
        }
    }

    fn echo(&mut self, args: &[String]) -> i32 {
        let mut newline = true;
        let mut escapes = false;
        let mut rest = args;
        while let Some(flag) = rest.first() {
            let letters = flag.strip_prefix('-').unwrap_or("");
            if letters.is_empty() || !letters.chars().all(|c| matches!(c, 'n' | 'e' | 'E')) {
                break;
            }
            for c in letters.chars() {
                match c {
                    'n' => newline = false,
                    'e' => escapes = true,
                    _ => escapes = false,
                }
            }
            rest = &rest[1..];
        }
        let text = rest.join(" ");
        if escapes {
            let (bytes, stop) = unescape(&text);
            self.out.write(&bytes);
            if stop {
                return 0;
            }
        } else {
            self.out.write(text.as_bytes());
        }
        if newline {
            self.out.write(b"\n");
        }
        0
    }

    fn id(&mut self, args: &[String]) -> i32 {
        let mut field = None;
        let mut name = false;
        for a in args {
            match a.strip_prefix('-') {
                Some(letters) if !letters.is_empty() => {
                    for c in letters.chars() {
                        match c {
                            'u' | 'g' | 'G' => field = Some(c),
                            'n' => name = true,
                            _ => {
                                self.out.err_line(&format!("id: Unknown option '{c}'"));
                                return 1;
                            }
                        }
                    }
                }
                _ if a == "shell" || a == "2000" => {}
                _ => {
                    self.out.err_line(&format!("id: {a}: no such user"));
                    return 1;
                }
            }
        }
        match (field, name) {
            (None, _) => self.out.line(ID),
            (Some(_), true) => self.out.line("shell"),
            (Some(_), false) => self.out.line("2000"),
        }
        0
    }

    async fn getprop(&mut self, args: &[String]) -> io::Result<i32> {
        let props = self.phone.props().await?;
        match args {
            [] => {
                for (k, v) in &props {
                    self.out.line(&format!("[{k}]: [{v}]"));
                }
            }
            [key] => self.out.line(props.get(key).map_or("", String::as_str)),
            [key, default] => self.out.line(props.get(key).unwrap_or(default)),
            _ => {
                self.out.err_line("usage: getprop [NAME [DEFAULT]]");
                return Ok(1);
            }
        }
        Ok(0)
    }

    async fn pm(&mut self, args: &[String]) -> io::Result<i32> {
        let Some(cmd) = args.first() else {
            self.out.line(
                "Package manager (package) commands (simulated):\n  list packages [-3] [-s] [-f] [FILTER]\n  path PACKAGE\n  install [-r] [-t] [-d] [-g] PATH\n  uninstall [-k] PACKAGE",
            );
            return Ok(0);
        };
        match cmd.as_str() {
            "list" => match args.get(1).map(String::as_str) {
                Some("packages" | "package") => self.pm_list(&args[2..]).await,
                Some(what) => {
                    self.out
                        .err_line(&format!("Error: unknown list type '{what}'"));
                    Ok(USAGE)
                }
                None => {
                    self.out
                        .err_line("Error: didn't specify type of data to list");
                    Ok(USAGE)
                }
            },
            "path" => {
                let Some(name) = args.get(1) else {
                    self.out.err_line("Error: package name not specified");
                    return Ok(USAGE);
                };
                let state = self.phone.state().await?;
                match state.package(name) {
                    Some(p) => {
                        self.out.line(&format!("package:{}", p.apk_path));
                        Ok(0)
                    }
                    None => Ok(1),
                }
            }
            "install" => self.pm_install(&args[1..]).await,
            "uninstall" => self.pm_uninstall(&args[1..]).await,
            other => {
                self.out.err_line(&format!("Unknown command: {other}"));
                Ok(USAGE)
            }
        }
    }

    /// `cmd SERVICE ARGS`: the package and activity services are `pm` and `am`.
    async fn cmd(&mut self, args: &[String]) -> io::Result<i32> {
        match args.first().map(String::as_str) {
            Some("package") => self.pm(&args[1..]).await,
            Some("activity") => self.am(&args[1..]).await,
            Some(other) => {
                self.out
                    .err_line(&format!("cmd: Can't find service: {other}"));
                Ok(CMD_NO_SERVICE)
            }
            None => {
                self.out
                    .err_line("cmd: No service specified; use -l to list all services");
                Ok(CMD_NO_SERVICE)
            }
        }
    }

    /// `pm install [OPTIONS] PATH`: the APK at PATH on the phone. (`-S SIZE`, the APK on
    /// stdin, is how `adb install` streams; the ADB gateway answers it, since a script has no
    /// stdin.)
    async fn pm_install(&mut self, args: &[String]) -> io::Result<i32> {
        let mut path: Option<&String> = None;
        let mut streamed = false;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-r"
                | "-t"
                | "-d"
                | "-g"
                | "-f"
                | "-l"
                | "-s"
                | "-R"
                | "--dont-kill"
                | "--force-queryable"
                | "--instant"
                | "--full"
                | "--staged"
                | "--restrict-permissions"
                | "--bypass-low-target-sdk-block" => {}
                "-S" => {
                    streamed = true;
                    i += 1;
                }
                "--user" | "-i" | "--install-reason" | "-p" | "--pkg" | "--abi"
                | "--originating-uri" | "--referrer" | "--install-location" => i += 1,
                opt if opt.starts_with('-') => {
                    self.out.err_line(&format!("Error: Unknown option: {opt}"));
                    return Ok(1);
                }
                _ => path = Some(&args[i]),
            }
            i += 1;
        }
        let Some(path) = path else {
            self.out.err_line(if streamed {
                "Error: the APK must arrive on stdin (adb install), which this shell does not have"
            } else {
                "Error: must either specify a package size or an APK file"
            });
            return Ok(1);
        };
        let data = self.phone.data();
        let (cwd, p) = (self.cwd.clone(), path.clone());
        let host = self
            .phone
            .work()
            .blocking(move || {
                Ok(match paths::resolve(&data, &cwd, &p)? {
                    Ok(r) if std::fs::metadata(&r.host).is_ok_and(|m| m.is_file()) => Some(r.host),
                    _ => None,
                })
            })
            .await?;
        let Some(host) = host else {
            self.out
                .err_line(&format!("Error: Unable to open file: {path}"));
            self.out
                .err_line("Consider using a file under /data/local/tmp/");
            return Ok(1);
        };
        match packages::install_apk(self.phone, &host).await? {
            Ok(_) => {
                self.out.line("Success");
                Ok(0)
            }
            Err(refused) => {
                self.out.err_line(&refused.failure());
                Ok(1)
            }
        }
    }

    /// `pm uninstall [-k] [--user N] PACKAGE`.
    async fn pm_uninstall(&mut self, args: &[String]) -> io::Result<i32> {
        let mut name = None;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-k" => {}
                "--user" | "--versionCode" => i += 1,
                _ => name = Some(args[i].clone()),
            }
            i += 1;
        }
        let Some(name) = name else {
            self.out.err_line("Error: package name not specified");
            return Ok(USAGE);
        };
        if packages::uninstall(self.phone, &name).await? == Some(true) {
            self.out.line("Success");
            Ok(0)
        } else {
            self.out.err_line("Failure [DELETE_FAILED_INTERNAL_ERROR]");
            Ok(1)
        }
    }

    async fn pm_list(&mut self, args: &[String]) -> io::Result<i32> {
        let (mut third_party, mut system, mut with_path, mut disabled) =
            (false, false, false, false);
        let mut filter = None;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-3" => third_party = true,
                "-s" => system = true,
                "-f" => with_path = true,
                "-d" => disabled = true,
                "-e" | "-u" => {}
                "--user" => i += 1,
                opt if opt.starts_with('-') => {
                    self.out.err_line(&format!("Error: Unknown option: {opt}"));
                    return Ok(USAGE);
                }
                f => filter = Some(f.to_string()),
            }
            i += 1;
        }
        if disabled {
            return Ok(0);
        }
        let state = self.phone.state().await?;
        for p in &state.packages {
            let wanted = match (third_party, system) {
                (true, false) => !p.system,
                (false, true) => p.system,
                // Both or neither: `pm` lists what matches either.
                _ => true,
            };
            if !wanted
                || filter
                    .as_ref()
                    .is_some_and(|f| !p.name.contains(f.as_str()))
            {
                continue;
            }
            if with_path {
                self.out.line(&format!("package:{}={}", p.apk_path, p.name));
            } else {
                self.out.line(&format!("package:{}", p.name));
            }
        }
        Ok(0)
    }

    async fn am(&mut self, args: &[String]) -> io::Result<i32> {
        let Some(cmd) = args.first() else {
            self.out.line(
                "Activity manager (activity) commands (simulated):\n  start [-W] [-S] [-n COMPONENT] [PACKAGE|COMPONENT]\n  force-stop PACKAGE",
            );
            return Ok(0);
        };
        match cmd.as_str() {
            "start" | "start-activity" => self.am_start(&args[1..]).await,
            "force-stop" | "kill" => {
                let mut rest = &args[1..];
                if rest.first().is_some_and(|a| a == "--user") {
                    rest = rest.get(2..).unwrap_or_default();
                }
                let Some(name) = rest.first() else {
                    self.out.err_line(&format!(
                        "Exception occurred while executing '{cmd}':\njava.lang.IllegalArgumentException: Argument expected after \"{cmd}\""
                    ));
                    return Ok(USAGE);
                };
                let name = name.clone();
                self.phone.update(|s| s.stop_app(&name)).await?;
                Ok(0)
            }
            other => {
                self.out.err_line(&format!("Unknown command: {other}"));
                Ok(USAGE)
            }
        }
    }

    async fn am_start(&mut self, args: &[String]) -> io::Result<i32> {
        let mut component: Option<String> = None;
        let mut target: Option<String> = None;
        let mut wait = false;
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            match a {
                "-W" => wait = true,
                "-S" | "-D" | "-R" => {}
                "-n" | "-a" | "-c" | "-f" | "--user" | "-d" | "-t" => {
                    let Some(value) = args.get(i + 1) else {
                        self.out.err_line(&format!(
                            "Exception occurred while executing 'start':\njava.lang.IllegalArgumentException: No value specified for {a}"
                        ));
                        return Ok(USAGE);
                    };
                    if a == "-n" {
                        component = Some(value.clone());
                    }
                    i += 1;
                }
                opt if opt.starts_with('-') => {
                    self.out.err_line(&format!("Error: Unknown option: {opt}"));
                    return Ok(USAGE);
                }
                _ => target = Some(a.to_string()),
            }
            i += 1;
        }
        // `-n` names a component; a bare argument with a `/` is a launcher component, one without
        // is a package whose launcher activity opens (as Intent.parseCommandArgs reads them).
        let main = "act=android.intent.action.MAIN cat=[android.intent.category.LAUNCHER]";
        let (intent, package, class, resolve_by_package) = match (component, target) {
            (Some(c), _) => match split_component(&c) {
                Some((p, cls)) => (format!("cmp={p}/{}", short_class(&p, &cls)), p, cls, false),
                None => return Ok(self.bad_component(&c)),
            },
            (None, Some(t)) if t.contains('/') => match split_component(&t) {
                Some((p, cls)) => (
                    format!("{main} cmp={p}/{}", short_class(&p, &cls)),
                    p,
                    cls,
                    false,
                ),
                None => return Ok(self.bad_component(&t)),
            },
            (None, Some(p)) => (format!("{main} pkg={p}"), p, String::new(), true),
            (None, None) => {
                self.out.err_line(
                    "Exception occurred while executing 'start':\njava.lang.IllegalArgumentException: No intent supplied",
                );
                return Ok(USAGE);
            }
        };
        self.out.line(&format!("Starting: Intent {{ {intent} }}"));
        let started = self
            .phone
            .update(|s: &mut PhoneState| {
                if resolve_by_package {
                    // What a launcher icon's tap runs too (`input tap`, a viewer's touch).
                    s.launch(&package)
                } else if s.package(&package).is_some() {
                    s.start_app(&package);
                    true
                } else {
                    false
                }
            })
            .await?;
        if !started {
            if resolve_by_package {
                self.out.err_line(&format!(
                    "Error: Activity not started, unable to resolve Intent {{ {main} flg=0x10000000 pkg={package} }}"
                ));
            } else {
                self.out.err_line("Error type 3");
                self.out.err_line(&format!(
                    "Error: Activity class {{{package}/{class}}} does not exist."
                ));
            }
            return Ok(1);
        }
        if wait {
            self.out.line("Status: ok");
            self.out.line("LaunchState: COLD");
            if !resolve_by_package {
                self.out.line(&format!(
                    "Activity: {package}/{}",
                    short_class(&package, &class)
                ));
            }
            self.out.line("TotalTime: 312");
            self.out.line("WaitTime: 318");
            self.out.line("Complete");
        }
        Ok(0)
    }

    fn bad_component(&mut self, c: &str) -> i32 {
        self.out.err_line(&format!(
            "Exception occurred while executing 'start':\njava.lang.IllegalArgumentException: Bad component name: {c}"
        ));
        USAGE
    }

    async fn sleep(&mut self, args: &[String]) -> i32 {
        if args.is_empty() {
            self.out.err_line("sleep: Needs 1 argument");
            return 1;
        }
        let mut total = 0f64;
        for a in args {
            match parse_interval(a) {
                Some(s) => total += s,
                None => {
                    self.out
                        .line(&format!("sleep: invalid time interval '{a}'"));
                    return 1;
                }
            }
        }
        match Duration::try_from_secs_f64(total) {
            Ok(d) => tokio::time::sleep(d).await,
            // Longer than any clock can count: only the command's timeout ends it.
            Err(_) => std::future::pending::<()>().await,
        }
        0
    }

    async fn cd(&mut self, args: &[String]) -> io::Result<i32> {
        let target = args.first().cloned().unwrap_or_else(|| "/".into());
        let data = self.phone.data();
        let cwd = self.cwd.clone();
        let t = target.clone();
        let result = self
            .phone
            .work()
            .blocking(move || {
                let r = match paths::resolve(&data, &cwd, &t)? {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(path_error_text(&e))),
                };
                Ok(match std::fs::metadata(&r.host) {
                    Ok(m) if m.is_dir() => Ok(r.phone),
                    Ok(_) => Err("Not a directory"),
                    Err(e) => Err(errno_text(&e)),
                })
            })
            .await?;
        match result {
            Ok(phone) => {
                self.cwd = phone;
                Ok(0)
            }
            Err(why) => {
                self.out.err_line(&format!("sh: cd: {target}: {why}"));
                Ok(1)
            }
        }
    }

    fn fs_ctx(&self) -> FsCtx {
        FsCtx {
            data: self.phone.data(),
            cwd: self.cwd.clone(),
            storage: self.phone.storage().clone(),
        }
    }

    /// Runs a file builtin on a blocking trip (a permit of the phone's, [`crate::sim::work`])
    /// with the room left in the output.
    async fn fs(
        &mut self,
        args: &[String],
        builtin: fn(&FsCtx, &[String], &mut Output) -> i32,
    ) -> io::Result<i32> {
        let ctx = self.fs_ctx();
        let args = args.to_vec();
        let mut out = Output::new(self.out.room());
        let (out, status) = self
            .phone
            .work()
            .blocking(move || {
                let status = builtin(&ctx, &args, &mut out);
                Ok((out, status))
            })
            .await?;
        self.out.append(out);
        Ok(status)
    }
}

/// `pkg/cls` or `pkg/.cls` as (package, full class name).
fn split_component(c: &str) -> Option<(String, String)> {
    let (p, cls) = c.split_once('/')?;
    if p.is_empty() || cls.is_empty() {
        return None;
    }
    let cls = if cls.starts_with('.') {
        format!("{p}{cls}")
    } else {
        cls.to_string()
    };
    Some((p.to_string(), cls))
}

/// A class name as ComponentName.flattenToShortString shows it.
fn short_class<'a>(package: &str, class: &'a str) -> &'a str {
    match class.strip_prefix(package) {
        Some(rest) if rest.starts_with('.') => rest,
        _ => class,
    }
}

/// Seconds in `5`, `0.5`, `2s`, `1m`, `1h`, `1d`.
fn parse_interval(s: &str) -> Option<f64> {
    let (num, unit) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1.0),
        (i, 'm') => (&s[..i], 60.0),
        (i, 'h') => (&s[..i], 3600.0),
        (i, 'd') => (&s[..i], 86400.0),
        _ => (s, 1.0),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    num.parse::<f64>().ok().map(|n| n * unit)
}

/// `echo -e` escapes; true in the second place when `\c` asked to stop printing.
fn unescape(s: &str) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = bytes[i];
        i += 1;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'e' => out.push(0x1b),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'\\' => out.push(b'\\'),
            b'c' => return (out, true),
            b'0' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 3 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    v = v * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 2 && i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    v = v * 16 + (bytes[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                if n == 0 {
                    out.extend_from_slice(b"\\x");
                } else {
                    out.push(v as u8);
                }
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_escapes_and_sleep_intervals() {
        assert_eq!(unescape(r"a\tb\x41\0101\\"), (b"a\tbAA\\".to_vec(), false));
        assert_eq!(unescape(r"a\cb"), (b"a".to_vec(), true));
        assert_eq!(parse_interval("1.5"), Some(1.5));
        assert_eq!(parse_interval("2m"), Some(120.0));
        assert_eq!(parse_interval("-1"), None);
        assert_eq!(parse_interval("x"), None);
        assert_eq!(parse_interval("nan"), None);
    }

    #[test]
    fn components_read_like_android() {
        assert_eq!(
            split_component("com.a/.Main"),
            Some(("com.a".into(), "com.a.Main".into()))
        );
        assert_eq!(short_class("com.a", "com.a.Main"), ".Main");
        assert_eq!(short_class("com.a", "org.b.Main"), "org.b.Main");
        assert_eq!(split_component("com.a/"), None);
    }
}
