//! The command-line client: subcommands that call a server through the same signed API as the
//! official SDK (ACS3-HMAC-SHA256, by [`cloudphone_client`]), over HTTP or HTTPS, with the
//! profile from flags, the environment or the config file ([`config`]). A refused call prints
//! the vendor's `Code` and `Message`, never a stack trace; the exit status says whether
//! everything asked for succeeded.

pub mod apps;
pub mod config;
pub mod exec;
pub mod groups;
pub mod images;
pub mod instances;
pub mod screenshot;
pub mod tasks;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use cloudphone_client::{Client, Credentials, Options, push_list};
use serde_json::Value;

/// Where a client goes when nothing says otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9723";
/// The region a client names when nothing says otherwise (the server's own default).
pub const DEFAULT_REGION: &str = "cn-hangzhou";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Which server, with which key: flags, else environment variables, else the profile of the
/// config file.
#[derive(Args, Clone, Debug, Default)]
pub struct Profile {
    /// The config-file profile to use (default: [default]).
    #[arg(long, env = "CLOUDPHONE_PROFILE")]
    pub profile: Option<String>,
    /// The server: http://host:port or https://host:port [default: http://127.0.0.1:9723].
    #[arg(long, env = "CLOUDPHONE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// PEM certificates of a CA to trust for an https:// endpoint, besides the system's (a
    /// private CA; see the README's HTTPS section for making one).
    #[arg(long, env = "CLOUDPHONE_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    #[arg(long, env = "CLOUDPHONE_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    #[arg(long, env = "CLOUDPHONE_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: Option<String>,
    /// The region calls name (BizRegionId) [default: cn-hangzhou].
    #[arg(long, env = "CLOUDPHONE_REGION")]
    pub region: Option<String>,
}

/// A profile with every field settled.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// `http://host:port` or `https://host:port` (checked when the client is made).
    pub endpoint: String,
    pub ca_file: Option<PathBuf>,
    pub credentials: Credentials,
    pub region: String,
}

impl Profile {
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let file = config::profile(self.profile.as_deref())?;
        let endpoint = self
            .endpoint
            .clone()
            .or(file.endpoint)
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let missing = || {
            let at = config::path().map_or("the config file".into(), |p| p.display().to_string());
            anyhow!(
                "no access key: pass --access-key-id and --access-key-secret, set \
                 CLOUDPHONE_ACCESS_KEY_ID and CLOUDPHONE_ACCESS_KEY_SECRET, or run \
                 `cloudphone configure` to write them to {at}"
            )
        };
        let key_id = self
            .access_key_id
            .clone()
            .or(file.access_key_id)
            .ok_or_else(missing)?;
        let secret = self
            .access_key_secret
            .clone()
            .or(file.access_key_secret)
            .ok_or_else(missing)?;
        Ok(Resolved {
            endpoint,
            ca_file: self.ca_file.clone().or(file.ca_file.map(PathBuf::from)),
            credentials: Credentials { key_id, secret },
            region: self
                .region
                .clone()
                .or(file.region)
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
        })
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        self.resolve()?.client()
    }
}

impl Resolved {
    pub fn client(&self) -> anyhow::Result<Client> {
        let options = Options {
            ca_file: self.ca_file.clone(),
            ..Options::default()
        };
        Ok(Client::with_options(
            &self.endpoint,
            self.credentials.clone(),
            &options,
        )?)
    }
}

/// `--output`, for commands that print records.
#[derive(Args, Clone, Copy, Debug)]
pub struct Format {
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

/// `--wait`, for commands that start tasks.
#[derive(Args, Clone, Copy, Debug)]
pub struct Wait {
    /// Follow the tasks until they end, as `tasks watch` does; exit 1 if any failed.
    #[arg(long)]
    pub wait: bool,
    /// How often --wait polls, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub interval_ms: u64,
}

impl Wait {
    pub fn every(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(100))
    }
}

/// Prints what a task-producing call started (its InvokeId, the call's RequestId) and, with
/// `--wait`, follows it to the end; the exit status is that of the wait.
pub async fn started(
    client: &Client,
    body: &Value,
    batch: Option<&str>,
    wait: Wait,
) -> anyhow::Result<i32> {
    let invoke = body["RequestId"].as_str().unwrap_or_default().to_string();
    match batch {
        Some(task) => println!("InvokeId {invoke}  TaskId {task}"),
        None => println!("InvokeId {invoke}"),
    }
    if !wait.wait {
        eprintln!("follow it with: cloudphone tasks watch {invoke}");
        return Ok(0);
    }
    tasks::follow(client, batch.unwrap_or(&invoke), wait.every()).await
}

/// Calls `action`; a refusal becomes an error reading `Code: Message`.
pub async fn call(
    client: &Client,
    action: &str,
    params: &[(String, String)],
) -> anyhow::Result<Value> {
    Ok(client.call(action, params).await?)
}

/// Pages of a Describe call: the first, or with `all` every one; the records under `field`
/// and the server's TotalCount.
pub async fn pages(
    client: &Client,
    action: &str,
    params: &[(String, String)],
    field: &str,
    all: bool,
) -> anyhow::Result<(Vec<Value>, i64)> {
    let mut records = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut page = params.to_vec();
        if let Some(t) = &token {
            page.push(("NextToken".into(), t.clone()));
        }
        let body = call(client, action, &page).await?;
        records.extend(body[field].as_array().cloned().unwrap_or_default());
        token = body["NextToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if !all || token.is_none() {
            // TotalCount is a number in some answers and a string in others (the contract).
            let total = match &body["TotalCount"] {
                Value::String(s) => s.parse().ok(),
                v => v.as_i64(),
            };
            let total = total.unwrap_or(records.len() as i64);
            return Ok((records, total));
        }
    }
}

/// A table column: its header, and how a record's cell is written.
pub type Column<'a> = (&'a str, &'a dyn Fn(&Value) -> String);

/// Prints records as JSON or as a table of `columns`, with a line saying how many were left on
/// the server.
pub fn print_records(
    records: &[Value],
    total: i64,
    output: Output,
    columns: &[Column],
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(records)?),
        Output::Table => {
            let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| columns.iter().map(|(_, f)| f(r)).collect())
                .collect();
            print!("{}", table(&header, &rows));
            if records.len() as i64 != total {
                println!("({} of {total}; --all for every page)", records.len());
            }
        }
    }
    Ok(())
}

/// A Describe listing printed: the first page or, with `all`, every page of `action`'s
/// records under `field`, as `columns` or JSON.
pub async fn list(
    client: &Client,
    (action, field): (&str, &str),
    params: &[(String, String)],
    all: bool,
    output: Output,
    columns: &[Column<'_>],
) -> anyhow::Result<i32> {
    let (records, total) = pages(client, action, params, field, all).await?;
    print_records(&records, total, output, columns)?;
    Ok(0)
}

/// A Delete call on the ids of list parameter `list`, each named when done.
pub async fn delete(
    profile: &Profile,
    action: &str,
    list: &str,
    ids: Vec<String>,
) -> anyhow::Result<i32> {
    let client = profile.client()?;
    let mut params = Vec::new();
    push_list(&mut params, list, &ids);
    call(&client, action, &params).await?;
    for id in ids {
        println!("deleted {id}");
    }
    Ok(0)
}

/// An error with its causes, `a: b: c`, as `{:#}` prints an anyhow error.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(&format!(": {cause}"));
        next = cause.source();
    }
    out
}

/// A field as text: strings bare, null empty, anything else as JSON.
pub fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_line_up() {
        let t = table(
            &["A", "Long"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    Long\nxyz  1\nq    22\n");
    }
}
