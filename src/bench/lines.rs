//! Realistic security lines for the benchmarks: what sshd, sudo, auditd, fail2ban, Suricata
//! (EVE JSON) and the kernel firewall write, with the fields that vary in real logs varying
//! (addresses, ports, pids, users, audit serials, flow ids, key fingerprints), so that
//! compression figures are not flattered by repeated text.
//!
//! Must not: do I/O.

/// The jobs lines are made for, one stream each per host.
pub const JOBS: [&str; 6] = ["sshd", "sudo", "auditd", "fail2ban", "suricata", "kernel"];

const USERS: [&str; 8] = [
    "root", "admin", "ops", "deploy", "postgres", "ubuntu", "git", "backup",
];
const SIGNATURES: [(u32, &str); 4] = [
    (2001219, "ET SCAN Potential SSH Scan"),
    (2024897, "ET USER_AGENTS Go HTTP Client User-Agent"),
    (2100498, "GPL ATTACK_RESPONSE id check returned root"),
    (2013028, "ET POLICY curl User-Agent Outbound"),
];

/// splitmix64, seeded per line so that any line can be made again alone.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }

    fn ip(&mut self) -> String {
        let v = self.next_u64();
        format!(
            "{}.{}.{}.{}",
            1 + (v & 0xdf),
            (v >> 8) & 0xff,
            (v >> 16) & 0xff,
            (v >> 24) & 0xff
        )
    }

    fn b64(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n).map(|_| A[self.below(64) as usize] as char).collect()
    }
}

/// One line of `job` at `ts_s` (Unix seconds).
pub fn line(job: &str, ts_s: u64, r: &mut Rng) -> String {
    let pid = 1000 + r.below(4_000_000);
    let port = 1024 + r.below(64_000);
    match job {
        "sshd" => match r.below(3) {
            0 => format!(
                "sshd[{pid}]: Failed password for invalid user {} from {} port {port} ssh2",
                r.pick(&USERS),
                r.ip()
            ),
            1 => format!(
                "sshd[{pid}]: Accepted publickey for {} from {} port {port} ssh2: ED25519 SHA256:{}",
                r.pick(&USERS),
                r.ip(),
                r.b64(43)
            ),
            _ => format!(
                "sshd[{pid}]: Connection closed by authenticating user {} {} port {port} [preauth]",
                r.pick(&USERS),
                r.ip()
            ),
        },
        "sudo" => format!(
            "sudo[{pid}]: {} : TTY=pts/{} ; PWD=/home/{} ; USER=root ; COMMAND=/usr/bin/systemctl restart {}.service",
            r.pick(&USERS),
            r.below(12),
            r.pick(&USERS),
            r.pick(&["nginx", "postgresql", "sshd", "cron", "docker"])
        ),
        "auditd" => format!(
            "type=SYSCALL msg=audit({ts_s}.{:03}:{}): arch=c000003e syscall={} success={} exit=0 ppid={} pid={pid} auid={} uid=0 comm=\"{}\" exe=\"/usr/bin/{}\" key=\"exec\"",
            r.below(1000),
            r.below(100_000_000),
            r.pick(&["59", "2", "257", "42"]),
            r.pick(&["yes", "no"]),
            pid - 1 - r.below(900),
            1000 + r.below(50),
            r.pick(&["bash", "curl", "python3", "ssh"]),
            r.pick(&["bash", "curl", "python3", "ssh"])
        ),
        "fail2ban" => format!(
            "fail2ban.actions [{pid}]: NOTICE [sshd] Ban {} after {} failures within 600 seconds",
            r.ip(),
            3 + r.below(5)
        ),
        "suricata" => {
            let (sid, msg) = SIGNATURES[r.below(SIGNATURES.len() as u64) as usize];
            format!(
                "{{\"timestamp\":\"{ts_s}.{:06}\",\"flow_id\":{},\"event_type\":\"alert\",\"src_ip\":\"{}\",\"src_port\":{port},\"dest_ip\":\"10.0.{}.{}\",\"dest_port\":{},\"proto\":\"TCP\",\"alert\":{{\"signature_id\":{sid},\"signature\":\"{msg}\",\"severity\":{}}}}}",
                r.below(1_000_000),
                r.below(1 << 50),
                r.ip(),
                r.below(4),
                r.below(256),
                r.pick(&["22", "80", "443", "3306"]),
                1 + r.below(3)
            )
        }
        _ => format!(
            "kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC={} DST=198.51.100.10 LEN={} TTL={} ID={} PROTO=TCP SPT={port} DPT={} SYN",
            r.ip(),
            40 + r.below(1400),
            30 + r.below(100),
            r.below(65536),
            r.pick(&["22", "23", "445", "3389"])
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_vary_and_suricata_lines_are_json() {
        let mut r = Rng::new(1);
        let a = line("sshd", 1_754_400_000, &mut r);
        let b = line("sshd", 1_754_400_000, &mut r);
        assert_ne!(a, b);
        let eve = line("suricata", 1_754_400_000, &mut r);
        let v: serde_json::Value = serde_json::from_str(&eve).unwrap();
        assert_eq!(v["event_type"], "alert");
    }
}
