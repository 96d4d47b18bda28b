//! The command-line client: subcommands that call a server through the same signed API as the
//! official SDK (ACS3-HMAC-SHA256), with the key from flags or the environment. A refused call
//! prints the vendor's `Code` and `Message`, never a stack trace.

pub mod tasks;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::bench::client::{Client, Credentials};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Which server, with which key.
#[derive(Args, Clone)]
pub struct Profile {
    /// The server (http:// only in this build).
    #[arg(
        long,
        env = "CLOUDPHONE_ENDPOINT",
        default_value = "http://127.0.0.1:9723"
    )]
    pub endpoint: String,
    #[arg(long, env = "CLOUDPHONE_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,
    #[arg(long, env = "CLOUDPHONE_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: String,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

impl Profile {
    pub fn client(&self) -> anyhow::Result<Client> {
        let address = self
            .endpoint
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--endpoint must be an http:// URL (no TLS in this build)"))?
            .trim_end_matches('/');
        Client::new(
            address,
            Credentials {
                key_id: self.access_key_id.clone(),
                secret: self.access_key_secret.clone(),
            },
        )
    }
}

/// Calls `action`; a refusal becomes an error reading `Code: Message`.
pub async fn call(
    client: &Client,
    action: &str,
    params: &[(String, String)],
) -> anyhow::Result<Value> {
    let answer = client.call(action, params).await?;
    let body: Value = answer
        .json()
        .with_context(|| format!("{action}: HTTP {}", answer.status))?;
    if !(200..300).contains(&answer.status) {
        return Err(anyhow!(
            "{}: {}",
            body["Code"].as_str().unwrap_or("Error"),
            body["Message"]
                .as_str()
                .unwrap_or("the server refused the call")
        ));
    }
    Ok(body)
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
