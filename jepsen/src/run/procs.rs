//! Starting and signalling the broker and nameserver processes inside their namespaces.
//!
//! A process is started as `ip netns exec <ns> sh -c 'echo $$ > <pidfile>; exec "$0" "$@"' <bin>
//! <args>..`: the shell writes its own PID and then becomes the binary, so the recorded PID is
//! the broker's, never a wrapper's. Signals go to that PID only after checking that
//! `/proc/<pid>/exe` still is the binary we started (a PID can be reused); nothing is ever
//! killed by name.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// What to run, where, and where its output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub ns: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub pidfile: PathBuf,
    pub log: PathBuf,
    /// Extra environment (libfaketime's for a skewed clock); `ip` and `sh` pass it on.
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The full argument vector handed to `ip`.
    pub fn command(&self) -> Vec<String> {
        let mut c = vec![
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            self.ns.clone(),
            "sh".into(),
            "-c".into(),
            format!("echo $$ > '{}'; exec \"$0\" \"$@\"", self.pidfile.display()),
            self.binary.display().to_string(),
        ];
        c.extend(self.args.iter().cloned());
        c
    }

    /// Starts the process and returns its PID once the pidfile names it. The child is reaped
    /// by a background task, so a killed broker never lingers as a zombie.
    pub async fn spawn(&self) -> Result<i32, String> {
        let _ = fs::remove_file(&self.pidfile);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let c = self.command();
        let mut child = tokio::process::Command::new(&c[0])
            .args(&c[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        for _ in 0..100 {
            if let Ok(s) = fs::read_to_string(&self.pidfile)
                && let Ok(pid) = s.trim().parse::<i32>()
                && exe_is(pid, &self.binary)
            {
                return Ok(pid);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("{} did not start in {} (see {})", self.binary.display(), self.ns, self.log.display()))
    }
}

/// Whether `pid` is alive and runs `binary`.
pub fn exe_is(pid: i32, binary: &Path) -> bool {
    let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else { return false };
    let want = fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    // A replaced binary shows as "<path> (deleted)"; it is still the process we started.
    exe == want || exe.to_string_lossy().strip_suffix(" (deleted)") == Some(&*want.to_string_lossy())
}

/// Whether `pid` is a process that is still running or still exiting (a zombie counts as gone).
///
/// A killed process's main thread turns zombie first; its other threads may still be finishing
/// a system call (an `fdatasync`, a `pwrite`) and its files, listening socket included, stay
/// open until the last one is gone. So a zombie leader with live threads is still alive: a
/// restart would find the port in use, and an undo-journal replay could be overwritten by a
/// dying write.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) if state(&stat) != Some("Z") => true,
        Ok(_) => fs::read_dir(format!("/proc/{pid}/task")).map(|tasks| tasks.count() > 1).unwrap_or(false),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/<pid>/stat` line (after the parenthesised command name).
fn state(stat: &str) -> Option<&str> {
    stat.rsplit(')').next().and_then(|r| r.split_whitespace().next())
}

/// Sends `sig` to `pid` if it still runs `binary`. Returns whether the signal was sent.
pub fn signal(pid: i32, binary: &Path, sig: i32) -> bool {
    if !exe_is(pid, binary) {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; the PID was checked just above.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// SIGKILLs `pid` (if it runs `binary`) and waits up to 5 s for it to be gone.
pub async fn kill_and_wait(pid: i32, binary: &Path) {
    // A stopped process still dies on SIGKILL; SIGCONT first is not needed.
    if signal(pid, binary, libc::SIGKILL) {
        for _ in 0..250 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// SIGTERMs `pid` (if it runs `binary`) for a clean shutdown, waiting up to `grace`, then
/// SIGKILLs it if it is still there.
pub async fn stop_and_wait(pid: i32, binary: &Path, grace: Duration) {
    if signal(pid, binary, libc::SIGTERM) {
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    kill_and_wait(pid, binary).await;
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `prog` is an executable on `PATH`.
pub fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file())).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_records_its_own_pid_then_execs_the_binary() {
        let l = Launch {
            ns: "rj5-n2".into(),
            binary: "/b/raftmq-broker".into(),
            args: vec!["--node-id".into(), "2".into()],
            pidfile: "/r/n2.pid".into(),
            log: "/r/logs/n2.log".into(),
            env: Vec::new(),
        };
        assert_eq!(
            l.command(),
            [
                "ip",
                "netns",
                "exec",
                "rj5-n2",
                "sh",
                "-c",
                "echo $$ > '/r/n2.pid'; exec \"$0\" \"$@\"",
                "/b/raftmq-broker",
                "--node-id",
                "2"
            ]
        );
    }

    #[test]
    fn the_state_letter_follows_the_command_name_even_with_parentheses_in_it() {
        assert_eq!(state("4242 (raftmq (x)) Z 1 4242"), Some("Z"));
        assert_eq!(state("17 (raftmq-broker) S 1 17"), Some("S"));
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_binary_is_not_signalled() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(!exe_is(me, Path::new("/definitely/not/this")));
        assert!(!signal(me, Path::new("/definitely/not/this"), 0));
        let exe = std::env::current_exe().expect("current exe");
        assert!(exe_is(me, &exe));
    }
}
