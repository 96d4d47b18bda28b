//! `cloudphone admin ...`: accounts, access keys and the audit log, acting on a server's store
//! directly (the SQLite file of a data dir, or the PostgreSQL database of a fleet of nodes).
//! Whoever can run these can read the store anyway; nothing here goes over the API. A key or
//! account disabled here is refused by every node at its very next call: each call's nonce
//! write checks the key in the same statement.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cloudphone_core::resources::AccessKey;
use cloudphone_store::{AccountDeletion, AuditFilter, Store};
use serde_json::json;

use crate::cli::{Output, table};

#[derive(Args)]
pub struct AdminArgs {
    /// The server's data dir (its SQLite database, without --database-url).
    #[arg(long, global = true, default_value = "./cloudphone-data")]
    data_dir: PathBuf,
    /// The servers' PostgreSQL database.
    #[arg(
        long,
        global = true,
        env = "CLOUDPHONE_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: Output,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Accounts: each owns its phones, tasks, apps, buckets and keys.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Access keys: each acts for one account as one user (the Operator of its tasks).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The farm's hosts: phones, capacity, health, watcher; cordon and uncordon.
    #[command(subcommand)]
    Hosts(crate::admin_hosts::HostsCommand),
    /// The audit log of mutating calls, oldest first.
    #[command(after_help = "\
Examples:
  cloudphone admin audit --account acme --limit 50
  cloudphone admin audit --action DeleteAndroidInstanceGroup --output json
  cloudphone admin audit --after-id 1200        (the entries after one seen before)")]
    Audit {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        action: Option<String>,
        /// Only entries after this id.
        #[arg(long, default_value_t = 0)]
        after_id: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Lists accounts with their keys and instances.
    List,
    /// Creates an account (nothing happens if it exists).
    Create {
        id: String,
        /// A display name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Disables an account: none of its keys authenticates any more, on any node.
    Disable { id: String },
    /// Enables a disabled account.
    Enable { id: String },
    /// Deletes an account and its keys; refused while it has instances (delete its groups first).
    Delete { id: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Lists keys (secrets are not shown).
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Creates a key for an account (created if new) and prints it, secret included, once.
    Create {
        #[arg(long)]
        account: String,
        /// The user name shown as the Operator of the key's tasks (default: the account).
        #[arg(long)]
        user: Option<String>,
    },
    /// Disables a key: refused at its next call on every node.
    Disable { key_id: String },
    /// Enables a disabled key.
    Enable { key_id: String },
    /// Deletes a key.
    Delete { key_id: String },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<i32> {
    let store = cloudphone::open_store(&args.data_dir, args.database_url.as_deref()).await?;
    let store = store.as_ref();
    match args.command {
        AdminCommand::Accounts(c) => accounts(store, c, args.output).await,
        AdminCommand::Keys(c) => keys(store, c, args.output).await,
        AdminCommand::Hosts(c) => crate::admin_hosts::run(store, c, args.output).await,
        AdminCommand::Audit {
            account,
            action,
            after_id,
            limit,
        } => {
            let entries = store
                .audit(&AuditFilter {
                    account_id: account,
                    action,
                    after_id,
                    limit,
                })
                .await?;
            match args.output {
                Output::Json => {
                    let rows: Vec<_> = entries
                        .iter()
                        .map(|e| {
                            json!({"Id": e.id, "Time": cloudphone_core::time::iso(e.at_ms),
                                "Account": e.account_id, "User": e.user_name, "AccessKeyId": e.key_id,
                                "Action": e.action, "ResourceIds": e.resource_ids,
                                "RequestId": e.request_id, "Source": e.source, "Outcome": e.outcome})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> = entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.id.to_string(),
                                cloudphone_core::time::iso(e.at_ms),
                                e.account_id.clone(),
                                e.user_name.clone(),
                                e.action.clone(),
                                e.outcome.clone(),
                                e.source.clone(),
                                e.request_id.clone(),
                                e.resource_ids.join(","),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "Id",
                                "Time",
                                "Account",
                                "User",
                                "Action",
                                "Outcome",
                                "Source",
                                "RequestId",
                                "Resources"
                            ],
                            &rows
                        )
                    );
                }
            }
            Ok(0)
        }
    }
}

async fn accounts(store: &dyn Store, c: AccountsCommand, output: Output) -> anyhow::Result<i32> {
    match c {
        AccountsCommand::List => {
            let all = store.list_accounts().await?;
            match output {
                Output::Json => {
                    let rows: Vec<_> = all
                        .iter()
                        .map(|a| {
                            json!({"Account": a.id, "Name": a.name, "Disabled": a.disabled,
                                "Created": cloudphone_core::time::iso(a.created_ms),
                                "Keys": a.keys, "Instances": a.instances})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|a| {
                            vec![
                                a.id.clone(),
                                a.name.clone(),
                                if a.disabled { "disabled" } else { "enabled" }.into(),
                                a.keys.to_string(),
                                a.instances.to_string(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(&["Account", "Name", "State", "Keys", "Instances"], &rows)
                    );
                }
            }
        }
        AccountsCommand::Create { id, name } => {
            check_account_id(&id)?;
            store
                .ensure_account(&id, name.as_deref().unwrap_or(&id))
                .await?;
            println!("account {id}");
        }
        AccountsCommand::Disable { id } => {
            if !store.set_account_disabled(&id, true).await? {
                bail!("no account {id}");
            }
            println!("account {id} disabled");
        }
        AccountsCommand::Enable { id } => {
            if !store.set_account_disabled(&id, false).await? {
                bail!("no account {id}");
            }
            println!("account {id} enabled");
        }
        AccountsCommand::Delete { id } => match store.delete_account(&id).await? {
            AccountDeletion::Deleted => println!("account {id} deleted"),
            AccountDeletion::NotFound => bail!("no account {id}"),
            AccountDeletion::HasInstances(n) => bail!(
                "account {id} still has {n} instances: delete its groups first \
                 (DeleteAndroidInstanceGroup), or disable it instead"
            ),
        },
    }
    Ok(0)
}

/// Creates a key for `account` (and the account if new) and prints it as JSON, secret included:
/// the only time the secret is shown.
pub async fn create_key(
    store: &dyn Store,
    account: &str,
    user: Option<String>,
) -> anyhow::Result<()> {
    check_account_id(account)?;
    store.ensure_account(account, account).await?;
    let key = AccessKey {
        key_id: format!("LTAI{}", cloudphone_core::ids::secret(20)),
        secret: cloudphone_core::ids::secret(30),
        account_id: account.to_string(),
        user_name: user.unwrap_or_else(|| account.to_string()),
    };
    store
        .put_access_key(&key)
        .await
        .context("storing the key")?;
    println!(
        "{}",
        json!({
            "AccessKeyId": key.key_id,
            "AccessKeySecret": key.secret,
            "Account": key.account_id,
            "UserName": key.user_name,
        })
    );
    Ok(())
}

fn check_account_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("an account id is 1-64 letters, digits, '-', '_' or '.': {id:?}");
    }
    Ok(())
}

async fn keys(store: &dyn Store, c: KeysCommand, output: Output) -> anyhow::Result<i32> {
    match c {
        KeysCommand::List { account } => {
            let all = store.list_access_keys(account.as_deref()).await?;
            let state = |disabled: bool, account_disabled: bool| match (disabled, account_disabled)
            {
                (false, false) => "enabled",
                (true, _) => "disabled",
                (false, true) => "account disabled",
            };
            match output {
                Output::Json => {
                    let rows: Vec<_> = all
                        .iter()
                        .map(|k| {
                            json!({"AccessKeyId": k.key.key_id, "Account": k.key.account_id,
                                "UserName": k.key.user_name,
                                "State": state(k.disabled, k.account_disabled),
                                "Created": cloudphone_core::time::iso(k.created_ms)})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|k| {
                            vec![
                                k.key.key_id.clone(),
                                k.key.account_id.clone(),
                                k.key.user_name.clone(),
                                state(k.disabled, k.account_disabled).into(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(&["AccessKeyId", "Account", "User", "State"], &rows)
                    );
                }
            }
        }
        KeysCommand::Create { account, user } => create_key(store, &account, user).await?,
        KeysCommand::Disable { key_id } => {
            if !store.set_access_key_disabled(&key_id, true).await? {
                bail!("no access key {key_id}");
            }
            println!("key {key_id} disabled");
        }
        KeysCommand::Enable { key_id } => {
            if !store.set_access_key_disabled(&key_id, false).await? {
                bail!("no access key {key_id}");
            }
            println!("key {key_id} enabled");
        }
        KeysCommand::Delete { key_id } => {
            if !store.delete_access_key(&key_id).await? {
                bail!("no access key {key_id}");
            }
            println!("key {key_id} deleted");
        }
    }
    Ok(0)
}
