//! DescribeRegions: the one region this server is configured for.

use cloudphone_core::ApiError;
use serde_json::{Value, json};

use crate::params::Params;
use crate::state::Ctx;

pub struct DescribeRegions {
    chinese: bool,
}

impl DescribeRegions {
    pub fn parse(p: &Params) -> Result<DescribeRegions, ApiError> {
        let chinese = match p.get("AcceptLanguage") {
            None | Some("en") => false,
            Some("cn") => true,
            Some(v) => {
                return Err(ApiError::invalid(
                    "AcceptLanguage",
                    format!("'{v}' is not cn or en."),
                ));
            }
        };
        match p.get("SaleMode") {
            None | Some("Instance") | Some("Node") => {}
            Some(v) => {
                return Err(ApiError::invalid(
                    "SaleMode",
                    format!("'{v}' is not Instance or Node."),
                ));
            }
        }
        Ok(DescribeRegions { chinese })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let region = &ctx.state.region;
        let name = if self.chinese {
            format!("本地 ({region})")
        } else {
            format!("Local ({region})")
        };
        Ok(json!({ "RegionModels": [{ "RegionId": region, "RegionName": name }] }))
    }
}
