//! One link dump, looked up by name and by ifindex.
//!
//! Looking a device up by dumping every link costs O(links); doing it per
//! object made a reconcile O(N²) at a thousand veths. An index is built from
//! one dump and answers both questions for the rest of an apply step.

use std::collections::HashMap;

use super::{Link, Netlink, NetlinkError};

#[derive(Debug, Default, Clone)]
pub struct LinkIndex {
    links: Vec<Link>,
    by_name: HashMap<String, usize>,
    by_index: HashMap<u32, usize>,
}

impl LinkIndex {
    pub fn new(links: Vec<Link>) -> Self {
        let by_name = links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.clone(), i))
            .collect();
        let by_index = links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.index, i))
            .collect();
        Self {
            links,
            by_name,
            by_index,
        }
    }

    /// One dump of the namespace's links.
    pub async fn dump(netlink: &Netlink) -> Result<Self, NetlinkError> {
        Ok(Self::new(netlink.links().await?))
    }

    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.by_name.get(name).map(|&i| &self.links[i])
    }

    pub fn by_index(&self, index: u32) -> Option<&Link> {
        self.by_index.get(&index).map(|&i| &self.links[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Link> {
        self.links.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            alias: None,
            mac: None,
            mtu: 1500,
            up: true,
            peer_index: None,
        }
    }

    #[test]
    fn finds_by_name_and_by_index() {
        let index = LinkIndex::new(vec![link(1, "lo"), link(7, "obr0"), link(9, "va1b2c3d40")]);
        assert_eq!(index.by_name("obr0").map(|l| l.index), Some(7));
        assert_eq!(
            index.by_index(9).map(|l| l.name.as_str()),
            Some("va1b2c3d40")
        );
        assert!(index.by_name("eth9").is_none());
        assert!(index.by_index(2).is_none());
        assert_eq!(index.iter().count(), 3);
    }

    /// A fresh namespace has only `lo`: one request finds it, none finds what is not there.
    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn link_by_name_asks_for_one_link() {
        let ns = std::thread::spawn(|| {
            // SAFETY: unshare moves only this short-lived thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            std::fs::File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap();
        let found = crate::netlink::in_netns(&ns, |netlink| async move {
            let lo = netlink.link_by_name("lo").await?;
            let missing = netlink.link_by_name("eth9").await?;
            let too_long = netlink.link_by_name("a-name-longer-than-ifnamsiz").await?;
            let empty = netlink.link_by_name("").await?;
            let index = LinkIndex::dump(&netlink).await?;
            Ok((lo, missing, too_long, empty, index))
        })
        .unwrap();
        let (lo, missing, too_long, empty, index) = found;
        let lo = lo.expect("lo");
        assert_eq!(lo.name, "lo");
        assert_eq!(index.by_index(lo.index), Some(&lo));
        assert!(missing.is_none() && too_long.is_none() && empty.is_none());
    }
}
