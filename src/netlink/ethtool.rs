//! Transmit checksum offload through the ethtool ioctl (no `ethtool` binary).
//!
//! On the userspace datapath, TCP from a veth with tx checksum offload on leaves
//! checksums unfilled and the connection stalls although ping works, so ovsmesh
//! turns it off on both ends of every container veth on netdev hosts. The ioctl
//! acts in the calling thread's network namespace.

use std::io;

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

fn ioctl(ifname: &str, value: &mut EthtoolValue) -> io::Result<()> {
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
    // SAFETY: a plain datagram socket and an ioctl on a properly laid-out ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let result = libc::ioctl(fd, SIOCETHTOOL as _, &mut request as *mut IfReq);
        let error = io::Error::last_os_error();
        libc::close(fd);
        if result < 0 {
            return Err(error);
        }
    }
    Ok(())
}

/// Whether transmit checksum offload is on.
pub fn tx_checksum(ifname: &str) -> io::Result<bool> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ioctl(ifname, &mut value)?;
    Ok(value.data != 0)
}

/// Turn transmit checksum offload on or off.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(on),
    };
    ioctl(ifname, &mut value)
}
