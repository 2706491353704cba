//! The test network: one namespace per broker and one for the nameserver, each with a veth to a
//! bridge in a switch namespace, plus a veth from the runner's (root) namespace to the same
//! bridge so the workload's clients reach every node.
//!
//! ```text
//!   root ns: rj<k>h 10.231.<k>.254 ──┐
//!                                    │   rj<k>-sw: bridge br0
//!   rj<k>-n1: rj<k>v1 10.231.<k>.1 ──┤
//!   rj<k>-n2: rj<k>v2 10.231.<k>.2 ──┤
//!   rj<k>-ns: rj<k>v0 10.231.<k>.100 ┘   (the nameserver)
//! ```
//!
//! `k` is the run id (1..=250): every name and the /24 carry it, so concurrent runs and leftovers
//! of crashed runs never clash, and cleanup finds everything by id. Faults are nftables `drop`
//! rules (packets vanish, callers time out), never routes (those fail fast; reference §13).
//!
//! Commands are built as argument vectors by pure functions (unit-tested) and run by [`sh`].

use std::io::Write;
use std::process::{Command, Stdio};

/// The nftables table every fault lives in; deleting it heals the namespace.
pub const NFT_TABLE: &str = "jepsen";
/// Prefix of every namespace and interface name this tool creates.
pub const PREFIX: &str = "rj";
pub const BROKER_PORT: u16 = 10911;
pub const NAMESRV_PORT: u16 = 9876;

/// Names and addresses of one run's network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub id: u8,
    pub nodes: usize,
}

/// A member of the network: broker `i` (1-based) or the nameserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    Broker(usize),
    Namesrv,
}

impl Topology {
    pub fn new(id: u8, nodes: usize) -> Self {
        Self { id, nodes }
    }

    pub fn switch_ns(&self) -> String {
        format!("{PREFIX}{}-sw", self.id)
    }

    pub fn ns(&self, m: Member) -> String {
        match m {
            Member::Broker(i) => format!("{PREFIX}{}-n{i}", self.id),
            Member::Namesrv => format!("{PREFIX}{}-ns", self.id),
        }
    }

    /// The member's interface (inside its namespace) and its peer on the bridge.
    fn veth(&self, m: Member) -> (String, String) {
        let i = match m {
            Member::Broker(i) => i,
            Member::Namesrv => 0,
        };
        (format!("{PREFIX}{}v{i}", self.id), format!("{PREFIX}{}s{i}", self.id))
    }

    /// The runner's interface in the root namespace (its peer `<name>s` is on the bridge).
    pub fn host_link(&self) -> String {
        format!("{PREFIX}{}h", self.id)
    }

    pub fn ip(&self, m: Member) -> String {
        match m {
            Member::Broker(i) => format!("10.231.{}.{i}", self.id),
            Member::Namesrv => format!("10.231.{}.100", self.id),
        }
    }

    pub fn host_ip(&self) -> String {
        format!("10.231.{}.254", self.id)
    }

    pub fn broker_addr(&self, i: usize) -> String {
        format!("{}:{BROKER_PORT}", self.ip(Member::Broker(i)))
    }

    pub fn namesrv_addr(&self) -> String {
        format!("{}:{NAMESRV_PORT}", self.ip(Member::Namesrv))
    }

    pub fn members(&self) -> Vec<Member> {
        let mut m: Vec<Member> = (1..=self.nodes).map(Member::Broker).collect();
        m.push(Member::Namesrv);
        m
    }

    /// Every namespace of the run, the switch last (deleting it also removes the bridge ports).
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.members().into_iter().map(|m| self.ns(m)).collect();
        v.push(self.switch_ns());
        v
    }

    /// `ip` invocations that build the network, in order.
    pub fn setup_commands(&self) -> Vec<Vec<String>> {
        let sw = self.switch_ns();
        let host = self.host_link();
        let host_peer = format!("{host}s");
        let mut c: Vec<Vec<String>> = vec![
            args(&["ip", "netns", "add", &sw]),
            args(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]),
            args(&["ip", "-n", &sw, "link", "set", "br0", "up"]),
            args(&["ip", "-n", &sw, "link", "set", "lo", "up"]),
            args(&["ip", "link", "add", &host, "type", "veth", "peer", "name", &host_peer, "netns", &sw]),
            args(&["ip", "-n", &sw, "link", "set", &host_peer, "master", "br0"]),
            args(&["ip", "-n", &sw, "link", "set", &host_peer, "up"]),
            args(&["ip", "addr", "add", &format!("{}/24", self.host_ip()), "dev", &host]),
            args(&["ip", "link", "set", &host, "up"]),
        ];
        for m in self.members() {
            let ns = self.ns(m);
            let (inner, port) = self.veth(m);
            c.push(args(&["ip", "netns", "add", &ns]));
            c.push(args(&[
                "ip", "link", "add", &inner, "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &sw,
            ]));
            c.push(args(&["ip", "-n", &sw, "link", "set", &port, "master", "br0"]));
            c.push(args(&["ip", "-n", &sw, "link", "set", &port, "up"]));
            c.push(args(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", self.ip(m)), "dev", &inner]));
            c.push(args(&["ip", "-n", &ns, "link", "set", &inner, "up"]));
            c.push(args(&["ip", "-n", &ns, "link", "set", "lo", "up"]));
        }
        c
    }

    /// The nftables script that makes a namespace drop every packet from and to `peers`.
    pub fn isolate_script(&self, peers: &[Member]) -> String {
        self.drop_script(peers, true, true)
    }

    /// The nftables script that drops packets from `peers` (`inbound`) and/or to them
    /// (`outbound`). Dropping, not rejecting: the other side sees a silent network.
    pub fn drop_script(&self, peers: &[Member], inbound: bool, outbound: bool) -> String {
        let set: Vec<String> = peers.iter().map(|p| self.ip(*p)).collect();
        let set = set.join(", ");
        let mut s = format!("table inet {NFT_TABLE} {{\n");
        if inbound && !peers.is_empty() {
            s += &format!(
                "\tchain in {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} drop; }}\n"
            );
        }
        if outbound && !peers.is_empty() {
            s += &format!(
                "\tchain out {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} drop; }}\n"
            );
        }
        s + "}\n"
    }

    /// Runs `nft -f -` with `script` inside `m`'s namespace.
    pub fn nft_apply(&self, m: Member, script: &str) -> Result<(), String> {
        let ns = self.ns(m);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("ip netns exec {ns} nft: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(|e| format!("nft stdin: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("nft in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Removes every fault from `m`'s namespace. Healing a healthy namespace is not an error.
    pub fn nft_heal(&self, m: Member) {
        let ns = self.ns(m);
        let _ = sh(&args(&["ip", "netns", "exec", &ns, "nft", "delete", "table", "inet", NFT_TABLE]));
    }

    pub fn setup(&self) -> Result<(), String> {
        for c in self.setup_commands() {
            sh(&c)?;
        }
        Ok(())
    }

    /// Deletes the namespaces and the host link. Processes must be gone first (a namespace
    /// with a process in it lives on). Errors are ignored: this also cleans half-built networks.
    pub fn teardown(&self) {
        for ns in self.namespaces() {
            let _ = sh(&args(&["ip", "netns", "del", &ns]));
        }
        let _ = sh(&args(&["ip", "link", "del", &self.host_link()]));
    }
}

/// The run id a namespace or link name of this tool carries, if it is one of ours.
pub fn run_id_of(name: &str) -> Option<u8> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let tail = &rest[digits.len()..];
    let ours = tail.starts_with('-') || tail == "h";
    if ours { digits.parse().ok() } else { None }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Runs a command; an error carries the command line and its stderr.
pub fn sh(c: &[String]) -> Result<String, String> {
    let (prog, rest) = c.split_first().ok_or("empty command")?;
    let out = Command::new(prog).args(rest).output().map_err(|e| format!("{}: {e}", c.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`{}` failed: {}", c.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Namespaces currently present (`ip netns list`), names only.
pub fn list_namespaces() -> Vec<String> {
    sh(&args(&["ip", "netns", "list"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Links in the root namespace, names only.
pub fn list_root_links() -> Vec<String> {
    sh(&args(&["ip", "-o", "link", "show"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect()
}

/// PIDs of processes in a namespace (`ip netns pids`).
pub fn namespace_pids(ns: &str) -> Vec<i32> {
    sh(&args(&["ip", "netns", "pids", ns])).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_carry_the_run_id() {
        let t = Topology::new(42, 3);
        assert_eq!(t.ns(Member::Broker(2)), "rj42-n2");
        assert_eq!(t.ns(Member::Namesrv), "rj42-ns");
        assert_eq!(t.switch_ns(), "rj42-sw");
        assert_eq!(t.broker_addr(3), "10.231.42.3:10911");
        assert_eq!(t.namesrv_addr(), "10.231.42.100:9876");
        assert_eq!(t.host_ip(), "10.231.42.254");
        assert_eq!(t.namespaces(), ["rj42-n1", "rj42-n2", "rj42-n3", "rj42-ns", "rj42-sw"]);
        // Linux interface names have at most 15 bytes.
        let t = Topology::new(250, 9);
        let longest = [t.veth(Member::Broker(9)).0, t.veth(Member::Broker(9)).1, format!("{}s", t.host_link())];
        assert!(longest.iter().all(|n| n.len() <= 15), "{longest:?}");
    }

    #[test]
    fn setup_gives_every_namespace_a_veth_on_the_bridge() {
        let t = Topology::new(7, 3);
        let cmds: Vec<String> = t.setup_commands().iter().map(|c| c.join(" ")).collect();
        assert_eq!(cmds[0], "ip netns add rj7-sw");
        assert!(cmds.contains(&"ip link add rj7h type veth peer name rj7hs netns rj7-sw".to_string()));
        assert!(cmds.contains(&"ip addr add 10.231.7.254/24 dev rj7h".to_string()));
        for (ns, v, s, ip) in [
            ("rj7-n1", "rj7v1", "rj7s1", "10.231.7.1"),
            ("rj7-n3", "rj7v3", "rj7s3", "10.231.7.3"),
            ("rj7-ns", "rj7v0", "rj7s0", "10.231.7.100"),
        ] {
            let add = format!("ip link add {v} netns {ns} type veth peer name {s} netns rj7-sw");
            let pos = |c: &str| cmds.iter().position(|x| x == c).unwrap_or_else(|| panic!("missing: {c}"));
            assert!(pos(&format!("ip netns add {ns}")) < pos(&add));
            assert!(pos(&add) < pos(&format!("ip -n rj7-sw link set {s} master br0")));
            pos(&format!("ip -n {ns} addr add {ip}/24 dev {v}"));
            pos(&format!("ip -n {ns} link set {v} up"));
        }
    }

    #[test]
    fn isolation_drops_both_directions_for_the_peers_only() {
        let t = Topology::new(9, 3);
        let s = t.isolate_script(&[Member::Broker(2), Member::Broker(3)]);
        assert!(s.starts_with("table inet jepsen {"));
        assert!(s.contains("hook input priority 0; policy accept; ip saddr { 10.231.9.2, 10.231.9.3 } drop;"));
        assert!(s.contains("hook output priority 0; policy accept; ip daddr { 10.231.9.2, 10.231.9.3 } drop;"));
        assert!(!s.contains("10.231.9.254"), "the runner's clients keep their path");
        let one_way = t.drop_script(&[Member::Broker(1)], true, false);
        assert!(one_way.contains("hook input") && !one_way.contains("hook output"), "{one_way}");
        assert_eq!(t.drop_script(&[], true, true), "table inet jepsen {\n}\n", "an empty table is valid");
    }

    #[test]
    fn run_ids_are_recognised_only_on_our_names() {
        assert_eq!(run_id_of("rj12-n1"), Some(12));
        assert_eq!(run_id_of("rj12-sw"), Some(12));
        assert_eq!(run_id_of("rj3h"), Some(3));
        assert_eq!(run_id_of("rj3hs"), None);
        assert_eq!(run_id_of("rjx-n1"), None);
        assert_eq!(run_id_of("eth0"), None);
        assert_eq!(run_id_of("rj12"), None);
    }
}
