//! Ferry's catalogue of built-in kinds ([`ferry_schema::kinds`]) as the kube crate's dynamic
//! APIs address them.

use ferry_schema::kinds::KindInfo;
use kube::api::ApiResource;

/// The kube crate's [`ApiResource`] of a built-in kind.
pub fn api_resource(info: &KindInfo) -> ApiResource {
    ApiResource {
        group: info.group.to_owned(),
        version: info.version.to_owned(),
        api_version: info.api_version(),
        kind: info.kind.to_owned(),
        plural: info.plural.to_owned(),
    }
}
