//! The shell's file builtins (`ls`, `mkdir`, `touch`, `rm`, and what `cat` opens). They run on
//! a blocking thread and reach files only through [`paths::resolve`], so they stay inside the
//! phone's data dir and never follow a symlink.

use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Output;
use crate::sim::paths::{self, PathError, Resolved};
use crate::sim::storage::{BLOCK, Storage};

pub(super) struct FsCtx {
    pub(super) data: std::path::PathBuf,
    pub(super) cwd: String,
    /// New files and directories take a block of it; a removal counts the files again.
    pub(super) storage: std::sync::Arc<Storage>,
}

impl FsCtx {
    /// Resolves `path` or says why not, as the builtin `tool` reports it.
    fn resolve(&self, tool: &str, path: &str, out: &mut Output) -> Option<Resolved> {
        match paths::resolve(&self.data, &self.cwd, path) {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                out.err_line(&format!("{tool}: {path}: {}", path_error_text(&e)));
                None
            }
            Err(e) => {
                out.err_line(&format!("{tool}: {path}: {}", errno_text(&e)));
                None
            }
        }
    }
}

pub(super) fn path_error_text(e: &PathError) -> &'static str {
    match e {
        PathError::Empty => "No such file or directory",
        PathError::Nul => "Invalid argument",
        // The sim never makes links; one planted from the host is not followed.
        PathError::Symlink(_) => "Permission denied",
    }
}

/// The C library's wording for an error, as toybox prints it.
pub(super) fn errno_text(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory",
        io::ErrorKind::NotADirectory => "Not a directory",
        io::ErrorKind::IsADirectory => "Is a directory",
        io::ErrorKind::PermissionDenied => "Permission denied",
        io::ErrorKind::AlreadyExists => "File exists",
        io::ErrorKind::DirectoryNotEmpty => "Directory not empty",
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => "Invalid argument",
        io::ErrorKind::StorageFull => "No space left on device",
        io::ErrorKind::FileTooLarge => "File too large",
        _ => "I/O error",
    }
}

/// Splits `-abc` flags (all of which must be in `known`) from operands; `--` ends flags.
pub(super) fn flags(
    tool: &str,
    args: &[String],
    known: &str,
    out: &mut Output,
) -> Option<(String, Vec<String>)> {
    let mut set = String::new();
    let mut operands = Vec::new();
    let mut options_done = false;
    for a in args {
        if !options_done && a == "--" {
            options_done = true;
        } else if !options_done && a.len() > 1 && a.starts_with('-') {
            for c in a[1..].chars() {
                if !known.contains(c) {
                    out.err_line(&format!("{tool}: Unknown option '{c}'"));
                    return None;
                }
                set.push(c);
            }
        } else {
            operands.push(a.clone());
        }
    }
    Some((set, operands))
}

pub(super) fn ls(ctx: &FsCtx, args: &[String], out: &mut Output) -> i32 {
    let Some((set, mut operands)) = flags("ls", args, "la1", out) else {
        return 1;
    };
    let (long, all) = (set.contains('l'), set.contains('a'));
    let headers = operands.len() > 1;
    if operands.is_empty() {
        operands.push(".".into());
    }
    let mut status = 0;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for p in &operands {
        let Some(r) = ctx.resolve("ls", p, out) else {
            status = 1;
            continue;
        };
        match std::fs::symlink_metadata(&r.host) {
            Ok(m) if m.is_dir() => dirs.push((p.clone(), r)),
            Ok(m) => files.push((p.clone(), r, m)),
            Err(e) => {
                out.err_line(&format!("ls: {p}: {}", errno_text(&e)));
                status = 1;
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    let file_rows: Vec<_> = files
        .iter()
        .map(|(name, r, m)| Entry::new(name.clone(), &r.host, m.clone()))
        .collect();
    print_entries(&file_rows, long, false, out);
    let mut first = file_rows.is_empty();
    for (name, r) in &dirs {
        if headers {
            if !first {
                out.write(b"\n");
            }
            out.line(&format!("{name}:"));
        }
        first = false;
        match list_dir(&r.host, all) {
            Ok(entries) => print_entries(&entries, long, true, out),
            Err(e) => {
                out.err_line(&format!("ls: {name}: {}", errno_text(&e)));
                status = 1;
            }
        }
        if out.truncated {
            break;
        }
    }
    status
}

struct Entry {
    name: String,
    meta: std::fs::Metadata,
    /// Where a symlink points; read, never followed.
    target: Option<String>,
}

impl Entry {
    fn new(name: String, host: &Path, meta: std::fs::Metadata) -> Entry {
        let target = meta
            .file_type()
            .is_symlink()
            .then(|| std::fs::read_link(host).ok())
            .flatten()
            .map(|t| t.to_string_lossy().into_owned());
        Entry { name, meta, target }
    }
}

fn list_dir(dir: &Path, all: bool) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    if all {
        for dot in [".", ".."] {
            let meta = std::fs::symlink_metadata(if dot == "." {
                dir
            } else {
                dir.parent().unwrap_or(dir)
            })?;
            entries.push(Entry {
                name: dot.into(),
                meta,
                target: None,
            });
        }
    }
    let mut named = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !all && name.starts_with('.') {
            continue;
        }
        named.push(Entry::new(name, &e.path(), e.metadata()?));
    }
    named.sort_by(|a, b| a.name.cmp(&b.name));
    entries.extend(named);
    Ok(entries)
}

fn print_entries(entries: &[Entry], long: bool, total: bool, out: &mut Output) {
    if !long {
        for e in entries {
            out.line(&e.name);
        }
        return;
    }
    if total {
        let blocks: u64 = entries.iter().map(|e| blocks_1k(&e.meta)).sum();
        out.line(&format!("total {blocks}"));
    }
    let link_w = entries
        .iter()
        .map(|e| nlink(&e.meta).to_string().len())
        .max()
        .unwrap_or(1);
    let size_w = entries
        .iter()
        .map(|e| e.meta.len().to_string().len())
        .max()
        .unwrap_or(1);
    for e in entries {
        let mut line = format!(
            "{} {:>link_w$} shell shell {:>size_w$} {} {}",
            mode_string(&e.meta),
            nlink(&e.meta),
            e.meta.len(),
            date(e.meta.modified().ok()),
            e.name
        );
        if let Some(t) = &e.target {
            line.push_str(" -> ");
            line.push_str(t);
        }
        out.line(&line);
    }
}

#[cfg(unix)]
fn nlink(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(m)
}

#[cfg(not(unix))]
fn nlink(_: &std::fs::Metadata) -> u64 {
    1
}

#[cfg(unix)]
fn blocks_1k(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::blocks(m) / 2
}

#[cfg(not(unix))]
fn blocks_1k(m: &std::fs::Metadata) -> u64 {
    m.len().div_ceil(1024)
}

fn mode_string(m: &std::fs::Metadata) -> String {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        '-'
    } else {
        '?'
    };
    #[cfg(unix)]
    let bits = std::os::unix::fs::PermissionsExt::mode(&m.permissions());
    #[cfg(not(unix))]
    let bits: u32 = if ft.is_dir() { 0o775 } else { 0o664 };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if bits & (0o400 >> i) != 0 { c } else { '-' });
    }
    s
}

/// `YYYY-MM-DD HH:MM` in UTC, as toybox `ls -l` shows times.
fn date(t: Option<SystemTime>) -> String {
    let secs = t
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// `path` opened for reading by `tool`, or the line saying why not. Blocking.
pub(super) fn open_file(tool: &str, ctx: &FsCtx, path: &str) -> Result<std::fs::File, String> {
    let mut why = Output::new(1024);
    let Some(r) = ctx.resolve(tool, path, &mut why) else {
        let (line, _) = why.into_parts();
        return Err(String::from_utf8_lossy(&line).trim_end().to_string());
    };
    let file = match std::fs::symlink_metadata(&r.host) {
        Ok(m) if m.is_dir() => Err(io::Error::from(io::ErrorKind::IsADirectory)),
        Ok(_) => std::fs::File::open(&r.host),
        Err(e) => Err(e),
    };
    file.map_err(|e| format!("{tool}: {path}: {}", errno_text(&e)))
}

pub(super) fn mkdir(ctx: &FsCtx, args: &[String], out: &mut Output) -> i32 {
    let Some((set, operands)) = flags("mkdir", args, "p", out) else {
        return 1;
    };
    if operands.is_empty() {
        out.err_line("mkdir: Needs 1 argument");
        return 1;
    }
    let parents = set.contains('p');
    let mut status = 0;
    for p in &operands {
        let Some(r) = ctx.resolve("mkdir", p, out) else {
            status = 1;
            continue;
        };
        // Each directory made takes a block of the phone's storage.
        let missing = if parents {
            missing_dirs(&ctx.data, &r.host)
        } else {
            u64::from(std::fs::symlink_metadata(&r.host).is_err())
        };
        let result = ctx.storage.take_entries(missing).and_then(|()| {
            let made = if parents {
                std::fs::create_dir_all(&r.host)
            } else {
                std::fs::create_dir(&r.host)
            };
            if made.is_err() {
                ctx.storage.give_back(missing * BLOCK);
            }
            made
        });
        if let Err(e) = result {
            out.err_line(&format!("mkdir: {p}: {}", errno_text(&e)));
            status = 1;
        }
    }
    status
}

pub(super) fn touch(ctx: &FsCtx, args: &[String], out: &mut Output) -> i32 {
    let Some((_, operands)) = flags("touch", args, "", out) else {
        return 1;
    };
    if operands.is_empty() {
        out.err_line("touch: Needs 1 argument");
        return 1;
    }
    let mut status = 0;
    for p in &operands {
        let Some(r) = ctx.resolve("touch", p, out) else {
            status = 1;
            continue;
        };
        let result = match std::fs::symlink_metadata(&r.host) {
            Ok(m) if m.is_dir() => std::fs::File::open(&r.host),
            Ok(_) => std::fs::OpenOptions::new().append(true).open(&r.host),
            // A new file takes a block of the phone's storage.
            Err(_) => ctx.storage.take_entries(1).and_then(|()| {
                let made = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&r.host);
                if made.is_err() {
                    ctx.storage.give_back(BLOCK);
                }
                made
            }),
        }
        .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = result {
            out.err_line(&format!("touch: {p}: {}", errno_text(&e)));
            status = 1;
        }
    }
    status
}

pub(super) fn rm(ctx: &FsCtx, args: &[String], out: &mut Output) -> i32 {
    let Some((set, operands)) = flags("rm", args, "rRfi", out) else {
        return 1;
    };
    let recursive = set.contains('r') || set.contains('R');
    let force = set.contains('f');
    if operands.is_empty() && !force {
        out.err_line("rm: Needs 1 argument");
        return 1;
    }
    let mut status = 0;
    for p in &operands {
        let Some(r) = ctx.resolve("rm", p, out) else {
            status = 1;
            continue;
        };
        if r.phone == "/" {
            out.err_line(&format!("rm: {p}: refusing to remove the root directory"));
            status = 1;
            continue;
        }
        let result = match std::fs::symlink_metadata(&r.host) {
            Ok(m) if m.is_dir() && !recursive => Err(io::Error::from(io::ErrorKind::IsADirectory)),
            // remove_dir_all does not follow links inside the tree.
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&r.host),
            Ok(_) => std::fs::remove_file(&r.host),
            Err(e) if force && e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            out.err_line(&format!("rm: {p}: {}", errno_text(&e)));
            status = 1;
        }
    }
    // What was removed is free again.
    if let Err(e) = ctx.storage.rescan(&ctx.data) {
        out.err_line(&format!("rm: {}", errno_text(&e)));
        status = 1;
    }
    status
}

/// How many directories `create_dir_all(dir)` would make under `data`.
fn missing_dirs(data: &Path, dir: &Path) -> u64 {
    let mut n = 0;
    let mut at = Some(dir);
    while let Some(d) = at {
        if d == data || !d.starts_with(data) || std::fs::symlink_metadata(d).is_ok() {
            break;
        }
        n += 1;
        at = d.parent();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_toybox_shows_them() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600 + 3600 + 120);
        assert_eq!(date(Some(t)), "2025-01-01 01:02");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(date(Some(leap)), "2000-02-29 00:00");
        assert_eq!(date(None), "1970-01-01 00:00");
    }
}
