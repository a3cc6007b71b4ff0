//! `--runtime auto` where io_uring is blocked the way default container seccomp profiles
//! block it (`io_uring_setup` fails with EPERM): pgate falls back to epoll and says why in
//! one line; `--runtime uring` refuses to start. The filter is a real seccomp filter
//! installed in the child before it runs pgate.
#![cfg(target_os = "linux")]
// Installing a seccomp filter in the child between fork and exec is unsafe by nature.
#![allow(unsafe_code)]
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

/// `io_uring_setup`'s number on x86_64 and aarch64 alike.
const SYS_IO_URING_SETUP: u32 = 425;

fn pgate_without_io_uring(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgate"));
    cmd.args(args).env_remove("PGATE_RUNTIME");
    // SAFETY: the closure runs in the child after fork; it only calls prctl(2) with
    // pointers to data it owns for the duration of the call (async-signal-safe).
    unsafe {
        cmd.pre_exec(|| {
            // seccomp_data.nr is at offset 0; EPERM for io_uring_setup, the rest allowed.
            let filter = [
                libc::sock_filter {
                    code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 1,
                    k: SYS_IO_URING_SETUP,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("pgate runs")
}

#[test]
fn auto_falls_back_to_epoll_and_says_why_where_seccomp_blocks_io_uring() {
    let out = pgate_without_io_uring(&["check-runtime"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "epoll");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("io_uring unavailable")
            && stderr.contains("io_uring_setup failed")
            && stderr.contains("seccomp"),
        "{stderr}"
    );
}

#[test]
fn runtime_uring_refuses_to_start_where_io_uring_is_blocked() {
    let out = pgate_without_io_uring(&["--runtime", "uring", "check-runtime"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--runtime uring") && stderr.contains("io_uring_setup failed"),
        "{stderr}"
    );
}

#[test]
fn without_a_filter_the_probe_answers_for_this_machine() {
    // Whatever this machine allows, `auto` names a driver and `epoll` is always there.
    let out = Command::new(env!("CARGO_BIN_EXE_pgate"))
        .args(["--runtime", "epoll", "check-runtime"])
        .output()
        .expect("pgate runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "epoll");
}
