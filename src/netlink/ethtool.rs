//! Transmit checksum offload through the ethtool ioctl (no `ethtool` binary).
//!
//! On the userspace datapath, TCP from a veth with tx checksum offload on leaves
//! checksums unfilled and the connection stalls although ping works, so ovsmesh
//! turns it off on both ends of every container veth on netdev hosts. The ioctl
//! acts in the network namespace its socket was opened in.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// A socket for ethtool requests. The ioctl acts in the namespace the socket
/// was opened in, so one opened in the host's namespace keeps acting there even
/// from a thread that has since entered a container's.
pub struct Socket(OwnedFd);

impl Socket {
    /// A socket in the calling thread's namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: a plain datagram socket; the descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ioctl(&self, ifname: &str, value: &mut EthtoolValue) -> io::Result<()> {
        if ifname.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        let mut request = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: value,
            _pad: [0; 16],
        };
        for (dst, src) in request.name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: an ioctl on our socket with a properly laid-out ifreq.
        let result = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                SIOCETHTOOL as _,
                &mut request as *mut IfReq,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether transmit checksum offload is on.
    pub fn tx_checksum(&self, ifname: &str) -> io::Result<bool> {
        let mut value = EthtoolValue {
            cmd: ETHTOOL_GTXCSUM,
            data: 0,
        };
        self.ioctl(ifname, &mut value)?;
        Ok(value.data != 0)
    }

    /// Turn transmit checksum offload on or off.
    pub fn set_tx_checksum(&self, ifname: &str, on: bool) -> io::Result<()> {
        super::wrote();
        let mut value = EthtoolValue {
            cmd: ETHTOOL_STXCSUM,
            data: u32::from(on),
        };
        self.ioctl(ifname, &mut value)
    }
}

/// Whether transmit checksum offload is on (in the calling thread's namespace).
pub fn tx_checksum(ifname: &str) -> io::Result<bool> {
    Socket::open()?.tx_checksum(ifname)
}

/// Turn transmit checksum offload on or off (in the calling thread's namespace).
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    Socket::open()?.set_tx_checksum(ifname, on)
}
