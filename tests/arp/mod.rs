//! ARP replies as they arrive on a device, counted with an AF_PACKET socket
//! (no tcpdump needed): which MAC answered for an address, and how many did.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ovsmesh::topology::Mac;

/// An AF_PACKET socket for ARP frames on `dev`, in the calling thread's namespace.
pub fn capture(dev: &str) -> OwnedFd {
    let protocol = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: a new socket, owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is new and ours.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(index > 0, "no device {dev}");
    // SAFETY: a zeroed sockaddr_ll with the fields bind reads.
    let bound = unsafe {
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = index as i32;
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
    socket
}

/// ARP replies from `sender` read from `socket` until `window` has passed.
pub fn replies(socket: &OwnedFd, sender: Ipv4Addr, window: Duration) -> Vec<Mac> {
    let deadline = Instant::now() + window;
    let mut replies = Vec::new();
    let mut frame = [0u8; 128];
    while Instant::now() < deadline {
        // SAFETY: reads into a buffer of the length given.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                frame.as_mut_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 42 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let arp = &frame[14..42];
        let reply = arp[6..8] == [0, 2];
        if reply && arp[14..18] == sender.octets() {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&arp[8..14]);
            replies.push(Mac(mac));
        }
    }
    replies
}
