//! DescribeImageList: the images the configured backend can run. They are all `System` images;
//! `User` images do not exist here, so asking for them lists nothing.

use cloudphone_core::ApiError;
use cloudphone_core::resources::Image;
use cloudphone_core::time::plain;
use serde_json::{Value, json};

use super::common::Paging;
use crate::params::Params;
use crate::state::Ctx;

pub struct DescribeImageList {
    system: bool,
    image_id: Option<String>,
    image_name: Option<String>,
    status: Option<String>,
    paging: Paging,
}

const STATUSES: &[&str] = &["AVAILABLE", "DELETE", "INIT", "CREATE_FAILED", "CREATING"];

impl DescribeImageList {
    pub fn parse(p: &Params) -> Result<DescribeImageList, ApiError> {
        let system = match p.required("ImageType")?.as_str() {
            "System" => true,
            "User" => false,
            v => {
                return Err(ApiError::invalid(
                    "ImageType",
                    format!("'{v}' is not User or System."),
                ));
            }
        };
        let status = p.string("Status");
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(ApiError::invalid(
                "Status",
                format!("'{s}' is not one of {}.", STATUSES.join(", ")),
            ));
        }
        Ok(DescribeImageList {
            system,
            image_id: p.string("ImageId"),
            image_name: p.string("ImageName"),
            status,
            paging: Paging::parse(p, 20)?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let scope = format!(
            "DescribeImageList|{}|{:?}|{:?}|{:?}",
            self.system, self.image_id, self.image_name, self.status
        );
        let page = self.paging.page(ctx, &scope)?;
        let mut images: Vec<Image> = ctx
            .state
            .backend
            .images()
            .into_iter()
            .filter(|_| self.system)
            .filter(|i| self.image_id.as_ref().is_none_or(|id| &i.id == id))
            .filter(|i| {
                self.image_name
                    .as_ref()
                    .is_none_or(|n| i.name.contains(n.as_str()))
            })
            .filter(|_| self.status.as_deref().is_none_or(|s| s == "AVAILABLE"))
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        let total = images.len();
        let start = page
            .after
            .as_ref()
            .map(|c| images.iter().position(|i| i.id > c.id).unwrap_or(total))
            .unwrap_or(0);
        let end = (start + page.limit).min(total);
        let data: Vec<Value> = images[start..end]
            .iter()
            .map(|i| image_json(i, &ctx.state.region))
            .collect();
        let mut body = json!({ "TotalCount": total, "Data": data });
        if end < total {
            let cursor = cloudphone_store::Cursor {
                ms: 0,
                id: images[end - 1].id.clone(),
            };
            body["NextToken"] = json!(ctx.state.tokens.issue(&scope, &cursor));
        }
        Ok(body)
    }
}

fn image_json(i: &Image, region: &str) -> Value {
    json!({
        "ImageId": i.id,
        "ImageName": i.name,
        "ImageType": "System",
        "ImageVersion": i.android_version,
        "SystemType": i.system_type,
        "Description": i.description,
        "Status": "AVAILABLE",
        "RenderingType": "CPU",
        "Language": "en",
        "ReleaseTime": plain(i.release_ms),
        "GmtCreate": cloudphone_core::time::iso(i.release_ms),
        "GmtModified": cloudphone_core::time::iso(i.release_ms),
        "ImageRegionList": [region],
        "ImageRegionDistributeMap": { region: { "DistributeStatus": "AVAILABLE", "Progress": "100%" } },
        "ImageBizTags": [],
    })
}
