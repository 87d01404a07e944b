//! Deterministic random inputs for `tests/topology_fuzz.rs`: a PRNG, the
//! vocabulary of a topology file (its keys, values of every type, edge values,
//! TOML fragments), random TOML, and random edits of a valid file.

/// SplitMix64: tiny, fast, and the same sequence everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const KEYS: &[&str] = &[
    "name",
    "encap",
    "vlan_transport",
    "vlan_tunnel_key",
    "overlay_tunnel_key",
    "underlay_mtu",
    "vlan_bridge",
    "overlay_bridge",
    "underlay_bridge",
    "bfd",
    "underlay_address",
    "ovsdb",
    "datapath",
    "underlay_nic",
    "uplink_nic",
    "routes",
    "kind",
    "vlan",
    "subnet",
    "gateway",
    "mode",
    "subnets",
    "gateways",
    "host",
    "docker",
    "netns",
    "network",
    "address",
    "ifname",
    "mac",
    "mtu",
    "interfaces",
    "to",
    "via",
    "mesh",
    "hosts",
    "networks",
    "containers",
    "node1",
    "blue",
    "",
    "a.b",
    "\"..\"",
    "x y",
];

/// Values of every TOML type, plus edge values of the ones the loader reads.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "68",
    "65535",
    "65536",
    "4094",
    "4095",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "nan",
    "-inf",
    "true",
    "false",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "\"\"",
    "\"..\"",
    "\"-x\"",
    "\"a/b\"",
    "\"\\u0000\"",
    "\"ü\"",
    "\"gre\"",
    "\"vxlan\"",
    "\"geneve\"",
    "\"netdev\"",
    "\"uplink\"",
    "\"direct\"",
    "\"vlan\"",
    "\"routed\"",
    "\"node1\"",
    "\"blue\"",
    "\"eth1\"",
    "\"ovs0\"",
    "\"192.0.2.1\"",
    "\"192.0.2.1/24\"",
    "\"192.0.2.1/33\"",
    "\"0.0.0.0/0\"",
    "\"255.255.255.255/32\"",
    "\"255.255.255.254/31\"",
    "\"255.255.255.252/30\"",
    "\"0.0.0.0/32\"",
    "\"10.0.0.0/8\"",
    "\"172.17.1.0/24\"",
    "\"192.168.0.1\"",
    "\"192.168.0.0/24\"",
    "\"2001:db8::1/64\"",
    "\"02:00:00:00:00:01\"",
    "\"ff:ff:ff:ff:ff:ff\"",
    "\"00:00:00:00:00:00\"",
    "\"zz:00:00:00:00:01\"",
    "\"unix:\"",
    "\"tcp:1.2.3.4:99999\"",
    "[]",
    "[1, 2]",
    "[\"a\", 1]",
    "[{ to = \"0.0.0.0/0\", via = \"192.0.2.1\" }]",
    "[{ to = \"10.0.0.0/8\" }]",
    "[[]]",
    "{}",
    "{ host = \"node1\", address = \"192.168.0.254\" }",
    "{ host = \"nowhere\" }",
    "{ node1 = \"172.17.1.0/24\", node2 = \"172.17.1.0/24\" }",
    "{ node1 = 5 }",
    "{ a = { b = { c = 1 } } }",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "{",
    "}",
    ",",
    ".",
    "#",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\\",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "é",
    "€",
    "𝄞",
    "=\n",
    "[mesh]\n",
    "[hosts.x]\n",
    "[[containers.c.interfaces]]\n",
    "[networks.n]\nkind = ",
];

fn random_key(rng: &mut Rng) -> String {
    let mut key = rng.pick(KEYS).to_string();
    if rng.chance(20) {
        key = format!("{key}.{}", rng.pick(KEYS));
    }
    if rng.chance(2) {
        // Dotted keys nested around the parser's recursion limit.
        let depth = 60 + rng.below(60);
        key = format!("{key}{}", ".k".repeat(depth));
    }
    if key.is_empty() {
        "\"\"".to_string()
    } else {
        key
    }
}

/// Random TOML built from the real keys and values, in a plausible shape.
pub fn random_toml(rng: &mut Rng) -> String {
    let mut text = String::new();
    if rng.chance(85) {
        text.push_str(&format!("[mesh]\nname = {}\n", rng.pick(VALUES)));
    }
    for _ in 0..rng.below(12) {
        let header = match rng.below(7) {
            0 => format!(
                "[hosts.{}]",
                rng.pick(&["node1", "node2", "a", "\"\"", "n-1"])
            ),
            1 => format!("[networks.{}]", rng.pick(&["blue", "red", "pods", "x"])),
            2 => format!("[containers.{}]", rng.pick(&["c1", "c2", "test1"])),
            3 => format!(
                "[[containers.{}.interfaces]]",
                rng.pick(&["c1", "c2", "test1"])
            ),
            4 => format!("[{}]", random_key(rng)),
            5 => format!("[[{}]]", random_key(rng)),
            _ => String::new(),
        };
        text.push_str(&header);
        text.push('\n');
        for _ in 0..rng.below(6) {
            text.push_str(&format!("{} = {}\n", random_key(rng), rng.pick(VALUES)));
        }
    }
    text
}

/// Replace one run of digits after the `=` of `line` by a neighbour or an edge value.
fn nudge_number(rng: &mut Rng, line: &str) -> String {
    let Some(eq) = line.find('=') else {
        return line.to_string();
    };
    let mut runs = Vec::new();
    let bytes = line.as_bytes();
    let mut i = eq;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return line.to_string();
    }
    let (start, end) = *rng.pick(&runs);
    let old: u64 = line[start..end].parse().unwrap_or(0);
    let new = match rng.below(8) {
        0 => old.wrapping_add(1),
        1 => old.saturating_sub(1),
        2 => 0,
        3 => old.saturating_mul(1000),
        4 => u64::from(u32::MAX) + rng.below(2) as u64,
        _ => *rng.pick(&[
            1, 8, 24, 29, 30, 31, 32, 33, 46, 67, 68, 255, 256, 4094, 4095, 65535, 65536,
            16_777_215, 16_777_216,
        ]),
    };
    format!("{}{new}{}", &line[..start], &line[end..])
}

/// One random edit of a valid file.
pub fn mutate(rng: &mut Rng, text: &str, other: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match rng.below(14) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let i = rng.below(n);
            let line = lines[i].clone();
            lines.insert(rng.below(n + 1), line);
        }
        2 => {
            let (i, j) = (rng.below(n), rng.below(n));
            lines.swap(i, j);
        }
        11..=13 => {
            // Nudge a number in a value: 4094 → 4095, /24 → /33, .1 → .256.
            let assignments: Vec<usize> = (0..n).filter(|&i| lines[i].contains('=')).collect();
            if !assignments.is_empty() {
                let i = *rng.pick(&assignments);
                lines[i] = nudge_number(rng, &lines[i]);
            }
        }
        3 | 4 => {
            // Replace a value with one of another type or an edge value.
            let i = rng.below(n);
            if let Some((key, _)) = lines[i].split_once('=') {
                lines[i] = format!("{key}= {}", rng.pick(VALUES));
            }
        }
        5 => {
            // Rename a key.
            let i = rng.below(n);
            if let Some((_, value)) = lines[i].split_once('=') {
                lines[i] = format!("{} ={value}", random_key(rng));
            }
        }
        6 => {
            // A line of another valid file, somewhere.
            let others: Vec<&str> = other.lines().collect();
            if !others.is_empty() {
                let line = rng.pick(&others).to_string();
                lines.insert(rng.below(n + 1), line);
            }
        }
        7 => {
            let mut cut = rng.below(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        8 => {
            // Random bytes (as text: the loader takes `&str`).
            let mut bytes = text.as_bytes().to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len() + 1);
                bytes.insert(at, rng.next() as u8);
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        9 => {
            let mut text = text.to_string();
            for _ in 0..1 + rng.below(4) {
                let mut at = rng.below(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let fragment: &&str = rng.pick(FRAGMENTS);
                text.insert_str(at, fragment);
            }
            return text;
        }
        _ => {
            // A random key = value line, somewhere.
            let line = format!("{} = {}", random_key(rng), rng.pick(VALUES));
            lines.insert(rng.below(n + 1), line);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
