//! The lab's named network namespaces: made and removed.
//!
//! Namespaces are made and removed the way `ip netns` does it (a bind mount
//! under /run/netns), through rtnetlink's helper. Entering one, or running a
//! daemon inside one, is [`crate::netns`]'s job.

use super::LabError;
use crate::netns;

pub fn exists(name: &str) -> bool {
    netns::path(name).is_ok_and(|path| path.exists())
}

/// Create a named namespace (no-op if it exists).
pub async fn add(name: &str) -> Result<(), LabError> {
    if netns::path(name)?.exists() {
        return Ok(());
    }
    rtnetlink::NetworkNamespace::add(name)
        .await
        .map_err(|source| LabError::Namespace {
            action: "create",
            name: name.to_string(),
            source,
        })
}

/// Remove a named namespace (no-op if it is gone).
pub async fn del(name: &str) -> Result<(), LabError> {
    if !exists(name) {
        return Ok(());
    }
    // What ovsmesh remembers of the namespace's settings would outlive it.
    if let Ok(file) = netns::open(name) {
        if let Ok(Err(error)) = netns::run(&file, crate::netlink::sysctl::forget_namespace) {
            tracing::warn!(namespace = name, %error, "could not forget its remembered settings");
        }
    }
    rtnetlink::NetworkNamespace::del(name)
        .await
        .map_err(|source| LabError::Namespace {
            action: "delete",
            name: name.to_string(),
            source,
        })
}

/// Names of existing namespaces starting with `prefix`.
pub fn with_prefix(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(netns::NETNS_DIR)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
