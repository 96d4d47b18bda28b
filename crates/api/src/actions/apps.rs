//! The app catalogue: CreateApp (registers an APK, reading its manifest), DescribeApps and
//! DeleteApps.

use cloudphone_core::resources::App;
use cloudphone_core::time::iso;
use cloudphone_core::{ApiError, ids};
use cloudphone_objects::ObjectError;
use cloudphone_store::{AppFilter, Page};
use serde_json::{Value, json};

use super::common::{Paging, internal};
use super::files;
use crate::params::Params;
use crate::state::Ctx;

/// Parses `AppIdList` (app ids as strings).
pub fn app_ids(p: &Params, required: bool) -> Result<Vec<i64>, ApiError> {
    let ids =
        p.list("AppIdList", 100)?
            .iter()
            .map(|s| {
                s.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
                    ApiError::invalid("AppIdList", format!("'{s}' is not an app id."))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
    if required && ids.is_empty() {
        return Err(ApiError::missing("AppIdList"));
    }
    Ok(ids)
}

/// The caller's apps among `ids`, in that order; an unknown or foreign id is "not found".
pub async fn resolve_apps(ctx: &Ctx<'_>, param: &str, ids: &[i64]) -> Result<Vec<App>, ApiError> {
    let filter = AppFilter {
        account_id: ctx.account().to_string(),
        ids: ids.to_vec(),
        ..AppFilter::default()
    };
    let found = ctx
        .state
        .store
        .list_apps(
            &filter,
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .map_err(internal)?;
    ids.iter()
        .map(|id| {
            found
                .items
                .iter()
                .find(|a| a.id == *id)
                .cloned()
                .ok_or_else(|| ApiError::not_found(param, id.to_string()))
        })
        .collect()
}

enum Source {
    /// The APK in the object store: read its manifest.
    Object(cloudphone_objects::OssPath, String),
    /// The APK at an http(s) URL: downloaded once now to read its manifest; installs fetch it
    /// again from the URL.
    Url(String),
    /// `CustomAppInfo`: taken as given, the file is not read.
    Custom {
        url: String,
        package: String,
        version: String,
        version_code: String,
        md5: String,
        size_mb: String,
    },
}

pub struct CreateApp {
    source: Source,
    name: Option<String>,
    description: String,
    icon_url: String,
    install_param: String,
}

impl CreateApp {
    pub fn parse(p: &Params) -> Result<CreateApp, ApiError> {
        let source = if let Some(info) = p.json("CustomAppInfo")? {
            let field = |name: &str| {
                info.get(name)
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.as_i64().map(|n| n.to_string()))
                    })
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid("CustomAppInfo", format!("{name} is required."))
                    })
            };
            let url = field("DownloadUrl")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ApiError::invalid(
                    "CustomAppInfo",
                    "DownloadUrl must be an http(s) URL.",
                ));
            }
            let md5 = field("Md5")?;
            if !(md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(ApiError::invalid(
                    "CustomAppInfo",
                    "Md5 must be 32 hexadecimal digits.",
                ));
            }
            Source::Custom {
                url,
                package: field("PackageName")?,
                version: field("Version")?,
                version_code: field("VersionCode")?,
                md5,
                size_mb: field("ApkSize")?,
            }
        } else if let Some(url) = p.string("OssAppUrl") {
            if url.starts_with("http://") || url.starts_with("https://") {
                Source::Url(url)
            } else {
                Source::Object(files::oss_path("OssAppUrl", &url)?, url)
            }
        } else if let (Some(path), Some(name)) = (p.string("FilePath"), p.string("FileName")) {
            let url = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                files::file_name("FileName", &name)?
            );
            Source::Object(files::oss_path("FilePath", &url)?, url)
        } else {
            return Err(ApiError::missing("OssAppUrl"));
        };
        if let Some(v) = p.get("SignApk")
            && !v.eq_ignore_ascii_case("true")
            && !v.eq_ignore_ascii_case("false")
        {
            return Err(ApiError::invalid("SignApk", "It is true or false."));
        }
        Ok(CreateApp {
            source,
            name: p.string("AppName"),
            description: p.string("Description").unwrap_or_default(),
            icon_url: p.string("IconUrl").unwrap_or_default(),
            install_param: p.string("InstallParam").unwrap_or_default(),
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let mut app = App {
            id: 0,
            account_id: ctx.account().to_string(),
            name: String::new(),
            package: String::new(),
            version_name: String::new(),
            version_code: String::new(),
            md5: String::new(),
            size: 0,
            source: String::new(),
            description: self.description,
            icon_url: self.icon_url,
            install_param: self.install_param,
            created_ms: ctx.now_ms,
            modified_ms: ctx.now_ms,
            installation_status: String::new(),
        };
        let label = match self.source {
            Source::Custom {
                url,
                package,
                version,
                version_code,
                md5,
                size_mb,
            } => {
                let mb: f64 = size_mb
                    .parse()
                    .map_err(|_| ApiError::invalid("CustomAppInfo", "ApkSize is a size in MB."))?;
                app.size = (mb * 1024.0 * 1024.0) as i64;
                (
                    app.source,
                    app.package,
                    app.version_name,
                    app.version_code,
                    app.md5,
                ) = (url, package, version, version_code, md5.to_lowercase());
                None
            }
            Source::Object(path, url) => {
                let scratch = ctx
                    .state
                    .objects
                    .staging_dir()
                    .join(format!("createapp-{}.apk", ids::new_id("")));
                let fetched = ctx
                    .state
                    .objects
                    .get_to_file(ctx.account(), &path, &scratch)
                    .await;
                let info = match fetched {
                    Ok(info) => info,
                    Err(ObjectError::NotFound(_)) => {
                        return Err(ApiError::not_found("OssAppUrl", &url));
                    }
                    Err(ObjectError::InvalidPath(why)) => {
                        return Err(ApiError::invalid("OssAppUrl", why));
                    }
                    Err(ObjectError::Io(why)) => {
                        tracing::error!(error = %why, "object store failure");
                        return Err(ApiError::Internal);
                    }
                };
                app.md5 = info.md5_hex;
                app.size = info.size as i64;
                app.source = url;
                read_manifest(&mut app, scratch).await?
            }
            Source::Url(url) => {
                let scratch = ctx
                    .state
                    .objects
                    .staging_dir()
                    .join(format!("createapp-{}.apk", ids::new_id("")));
                // A failed download leaves no file behind.
                let (size, md5) = download(&ctx.state.fetch, &url, &scratch).await?;
                app.md5 = md5;
                app.size = size as i64;
                app.source = url;
                read_manifest(&mut app, scratch).await?
            }
        };
        app.name = self.name.or(label).unwrap_or_else(|| app.package.clone());
        let id = ctx.state.store.create_app(&app).await.map_err(internal)?;
        Ok(json!({ "AppId": id }))
    }
}

/// Reads the manifest of the APK at `scratch` (then removed) into `app`; returns its label.
async fn read_manifest(
    app: &mut App,
    scratch: std::path::PathBuf,
) -> Result<Option<String>, ApiError> {
    let read = {
        let scratch = scratch.clone();
        tokio::task::spawn_blocking(move || cloudphone_apk::read_apk(&scratch)).await
    };
    let _ = tokio::fs::remove_file(&scratch).await;
    let apk = match read {
        Ok(Ok(apk)) => apk,
        Ok(Err(e)) => {
            return Err(ApiError::invalid(
                "OssAppUrl",
                format!("The file is not an APK: {e}"),
            ));
        }
        Err(_) => return Err(ApiError::Internal),
    };
    app.package = apk.package;
    app.version_name = apk.version_name.unwrap_or_default();
    app.version_code = apk.version_code.map(|c| c.to_string()).unwrap_or_default();
    Ok(apk.label)
}

/// Streams `url` into `scratch` through the outbound client (address filter, re-checked
/// redirects, timeouts, the byte cap); returns its size and MD5. A URL that could not be
/// fetched at all fails with one message, whatever the reason (a refused address, a closed
/// port, a silent one): CreateApp answers at once, and must not be a port scanner.
async fn download(
    fetch: &cloudphone_outbound::Outbound,
    url: &str,
    scratch: &std::path::Path,
) -> Result<(u64, String), ApiError> {
    use cloudphone_outbound::FetchError;
    match fetch.download(url, scratch).await {
        Ok(got) => Ok((got.size, got.md5_hex)),
        Err(FetchError::Status(status)) if status.as_u16() == 404 => {
            Err(ApiError::not_found("OssAppUrl", url))
        }
        Err(FetchError::Local(e)) => {
            tracing::error!(error = %e, "staging a downloaded APK failed");
            Err(ApiError::Internal)
        }
        Err(e) => {
            tracing::info!(url, detail = %e.detail(), "an APK could not be downloaded");
            Err(ApiError::invalid(
                "OssAppUrl",
                format!("The APK could not be downloaded: {e}."),
            ))
        }
    }
}

const INSTALLATION_STATUSES: &[&str] = &[
    "INSTALLING",
    "INSTALLED",
    "INSTALLFAILED",
    "UNINSTALLING",
    "UNINSTALLED",
    "UNINSTALLFAILED",
];

pub struct DescribeApps {
    filter: AppFilter,
    /// A filter that no app here matches (a Status other than NORMAL).
    nothing: bool,
    paging: Paging,
}

impl DescribeApps {
    pub fn parse(p: &Params) -> Result<DescribeApps, ApiError> {
        let mut ids = app_ids(p, false)?;
        ids.sort_unstable();
        ids.dedup();
        let installation_status = p.string("InstallationStatus");
        if let Some(s) = &installation_status
            && !INSTALLATION_STATUSES.contains(&s.as_str())
        {
            return Err(ApiError::invalid(
                "InstallationStatus",
                format!("'{s}' is not one of {}.", INSTALLATION_STATUSES.join(", ")),
            ));
        }
        let nothing = match p.get("Status") {
            None | Some("NORMAL") => false,
            Some("FAILED" | "CREATING") => true,
            Some(v) => {
                return Err(ApiError::invalid(
                    "Status",
                    format!("'{v}' is not NORMAL, FAILED or CREATING."),
                ));
            }
        };
        Ok(DescribeApps {
            filter: AppFilter {
                account_id: String::new(),
                ids,
                name: p.string("AppName"),
                md5: p.string("MD5"),
                installation_status,
            },
            nothing,
            paging: Paging::parse(p, 10)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        let scope = format!("DescribeApps|{:?}|{}", self.filter, self.nothing);
        let page = self.paging.page(ctx, &scope)?;
        if self.nothing {
            return Ok(json!({ "TotalCount": "0", "Data": [] }));
        }
        let listing = ctx
            .state
            .store
            .list_apps(&self.filter, &page)
            .await
            .map_err(internal)?;
        let data: Vec<Value> = listing
            .items
            .iter()
            .map(|a| {
                json!({
                    "AppId": a.id,
                    "AppName": a.name,
                    "PackageName": a.package,
                    "AndroidAppVersion": a.version_name,
                    "ApkSize": format!("{:.2}", a.size as f64 / (1024.0 * 1024.0)),
                    "MD5": a.md5,
                    "Status": "NORMAL",
                    "InstallationStatus": a.installation_status,
                    "Description": a.description,
                    "IconUrl": a.icon_url,
                    "AppType": "",
                    "BizRegionId": ctx.state.region,
                    "InstanceGroupList": [],
                    "GmtCreate": iso(a.created_ms),
                    "GmtModified": iso(a.modified_ms),
                })
            })
            .collect();
        let mut body = json!({ "TotalCount": listing.total.to_string(), "Data": data });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}

pub struct DeleteApps {
    ids: Vec<i64>,
}

impl DeleteApps {
    pub fn parse(p: &Params) -> Result<DeleteApps, ApiError> {
        let mut ids = app_ids(p, true)?;
        ids.sort_unstable();
        ids.dedup();
        Ok(DeleteApps { ids })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        resolve_apps(ctx, "AppIdList", &self.ids).await?;
        ctx.state
            .store
            .delete_apps(ctx.account(), &self.ids)
            .await
            .map_err(internal)?;
        Ok(json!({}))
    }
}
