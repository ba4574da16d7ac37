//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`) for x86_64, as an
//! allowlist: every syscall not listed fails with `EPERM`.
//!
//! The profile's capability-dependent rules are applied for the capability set the command
//! gets, its argument filters are kept (`socket` without `AF_VSOCK`, the five `personality`
//! values, `clone` without namespace flags unless `CAP_SYS_ADMIN`), and `clone3` answers
//! `ENOSYS` so glibc falls back to `clone`, whose flags the filter can see. Names of the
//! profile that do not exist on x86_64 (the `*32`, `*64` and `*_time64` variants of 32-bit
//! ABIs, `socketcall`, `ipc`, …) are left out. Newer moby releases add `cachestat`,
//! `fchmodat2`, `futex_wait`, `futex_wake`, `futex_requeue` and `map_shadow_stack`; they are
//! allowed here too, so a new glibc does not see `EPERM` where it expects `ENOSYS`.
//!
//! Two filters are installed: the allowlist (allow on match, `EPERM` otherwise; `clone3`
//! allowed) and one that answers `clone3` with `ENOSYS` (allow otherwise). The kernel applies
//! the most restrictive result, so `clone3` gets `ENOSYS` whichever filter runs first.
//! A syscall made through a 32-bit ABI (`int 0x80`) kills the process: seccompiler checks
//! the audit arch, where Docker carries a separate i386 table.
//!
//! `no_new_privs` stays off, as in BuildKit, so setuid programs and `sudo` work; installing
//! a filter then needs `CAP_SYS_ADMIN`, so [`install`] runs before the command's identity and
//! capabilities are set, and the allowlist permits every syscall that remaining set-up makes.
#![allow(unsafe_code)]

use std::collections::BTreeMap;

use caps::{Capability, CapsHashSet};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
/// | CLONE_NEWCGROUP` (2114060288): the bits `clone` may not carry without `CAP_SYS_ADMIN`.
pub(crate) const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`, the one socket family the profile refuses.
const AF_VSOCK: u64 = 40;

/// The `personality` values the profile allows: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32|UNAME26`, and the query `0xffffffff`.
pub(crate) const PERSONALITIES: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Syscalls the profile allows for everyone (its first rule, x86_64 names), plus the
/// ptrace family (allowed on kernels ≥ 4.8) and the x86_64-only `arch_prctl`/`modify_ldt`.
pub(crate) const ALLOWED: &[(&str, i64)] = &[
    ("accept", libc::SYS_accept),
    ("accept4", libc::SYS_accept4),
    ("access", libc::SYS_access),
    ("adjtimex", libc::SYS_adjtimex),
    ("alarm", libc::SYS_alarm),
    ("bind", libc::SYS_bind),
    ("brk", libc::SYS_brk),
    ("cachestat", 451),
    ("capget", libc::SYS_capget),
    ("capset", libc::SYS_capset),
    ("chdir", libc::SYS_chdir),
    ("chmod", libc::SYS_chmod),
    ("chown", libc::SYS_chown),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("clock_getres", libc::SYS_clock_getres),
    ("clock_gettime", libc::SYS_clock_gettime),
    ("clock_nanosleep", libc::SYS_clock_nanosleep),
    ("close", libc::SYS_close),
    ("close_range", libc::SYS_close_range),
    ("connect", libc::SYS_connect),
    ("copy_file_range", libc::SYS_copy_file_range),
    ("creat", libc::SYS_creat),
    ("dup", libc::SYS_dup),
    ("dup2", libc::SYS_dup2),
    ("dup3", libc::SYS_dup3),
    ("epoll_create", libc::SYS_epoll_create),
    ("epoll_create1", libc::SYS_epoll_create1),
    ("epoll_ctl", libc::SYS_epoll_ctl),
    ("epoll_ctl_old", libc::SYS_epoll_ctl_old),
    ("epoll_pwait", libc::SYS_epoll_pwait),
    ("epoll_pwait2", libc::SYS_epoll_pwait2),
    ("epoll_wait", libc::SYS_epoll_wait),
    ("epoll_wait_old", libc::SYS_epoll_wait_old),
    ("eventfd", libc::SYS_eventfd),
    ("eventfd2", libc::SYS_eventfd2),
    ("execve", libc::SYS_execve),
    ("execveat", libc::SYS_execveat),
    ("exit", libc::SYS_exit),
    ("exit_group", libc::SYS_exit_group),
    ("faccessat", libc::SYS_faccessat),
    ("faccessat2", libc::SYS_faccessat2),
    ("fadvise64", libc::SYS_fadvise64),
    ("fallocate", libc::SYS_fallocate),
    ("fanotify_mark", libc::SYS_fanotify_mark),
    ("fchdir", libc::SYS_fchdir),
    ("fchmod", libc::SYS_fchmod),
    ("fchmodat", libc::SYS_fchmodat),
    ("fchmodat2", 452),
    ("fchown", libc::SYS_fchown),
    ("fchownat", libc::SYS_fchownat),
    ("fcntl", libc::SYS_fcntl),
    ("fdatasync", libc::SYS_fdatasync),
    ("fgetxattr", libc::SYS_fgetxattr),
    ("flistxattr", libc::SYS_flistxattr),
    ("flock", libc::SYS_flock),
    ("fork", libc::SYS_fork),
    ("fremovexattr", libc::SYS_fremovexattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("fstat", libc::SYS_fstat),
    ("fstatfs", libc::SYS_fstatfs),
    ("fsync", libc::SYS_fsync),
    ("ftruncate", libc::SYS_ftruncate),
    ("futex", libc::SYS_futex),
    ("futex_requeue", 456),
    ("futex_wait", 455),
    ("futex_waitv", libc::SYS_futex_waitv),
    ("futex_wake", 454),
    ("futimesat", libc::SYS_futimesat),
    ("getcpu", libc::SYS_getcpu),
    ("getcwd", libc::SYS_getcwd),
    ("getdents", libc::SYS_getdents),
    ("getdents64", libc::SYS_getdents64),
    ("getegid", libc::SYS_getegid),
    ("geteuid", libc::SYS_geteuid),
    ("getgid", libc::SYS_getgid),
    ("getgroups", libc::SYS_getgroups),
    ("getitimer", libc::SYS_getitimer),
    ("getpeername", libc::SYS_getpeername),
    ("getpgid", libc::SYS_getpgid),
    ("getpgrp", libc::SYS_getpgrp),
    ("getpid", libc::SYS_getpid),
    ("getppid", libc::SYS_getppid),
    ("getpriority", libc::SYS_getpriority),
    ("getrandom", libc::SYS_getrandom),
    ("getresgid", libc::SYS_getresgid),
    ("getresuid", libc::SYS_getresuid),
    ("getrlimit", libc::SYS_getrlimit),
    ("get_robust_list", libc::SYS_get_robust_list),
    ("getrusage", libc::SYS_getrusage),
    ("getsid", libc::SYS_getsid),
    ("getsockname", libc::SYS_getsockname),
    ("getsockopt", libc::SYS_getsockopt),
    ("get_thread_area", libc::SYS_get_thread_area),
    ("gettid", libc::SYS_gettid),
    ("gettimeofday", libc::SYS_gettimeofday),
    ("getuid", libc::SYS_getuid),
    ("getxattr", libc::SYS_getxattr),
    ("inotify_add_watch", libc::SYS_inotify_add_watch),
    ("inotify_init", libc::SYS_inotify_init),
    ("inotify_init1", libc::SYS_inotify_init1),
    ("inotify_rm_watch", libc::SYS_inotify_rm_watch),
    ("io_cancel", libc::SYS_io_cancel),
    ("ioctl", libc::SYS_ioctl),
    ("io_destroy", libc::SYS_io_destroy),
    ("io_getevents", libc::SYS_io_getevents),
    ("io_pgetevents", 333),
    ("ioprio_get", libc::SYS_ioprio_get),
    ("ioprio_set", libc::SYS_ioprio_set),
    ("io_setup", libc::SYS_io_setup),
    ("io_submit", libc::SYS_io_submit),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("kill", libc::SYS_kill),
    ("landlock_add_rule", libc::SYS_landlock_add_rule),
    ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
    ("landlock_restrict_self", libc::SYS_landlock_restrict_self),
    ("lchown", libc::SYS_lchown),
    ("lgetxattr", libc::SYS_lgetxattr),
    ("link", libc::SYS_link),
    ("linkat", libc::SYS_linkat),
    ("listen", libc::SYS_listen),
    ("listxattr", libc::SYS_listxattr),
    ("llistxattr", libc::SYS_llistxattr),
    ("lremovexattr", libc::SYS_lremovexattr),
    ("lseek", libc::SYS_lseek),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("lstat", libc::SYS_lstat),
    ("madvise", libc::SYS_madvise),
    ("map_shadow_stack", 453),
    ("membarrier", libc::SYS_membarrier),
    ("memfd_create", libc::SYS_memfd_create),
    ("memfd_secret", libc::SYS_memfd_secret),
    ("mincore", libc::SYS_mincore),
    ("mkdir", libc::SYS_mkdir),
    ("mkdirat", libc::SYS_mkdirat),
    ("mknod", libc::SYS_mknod),
    ("mknodat", libc::SYS_mknodat),
    ("mlock", libc::SYS_mlock),
    ("mlock2", libc::SYS_mlock2),
    ("mlockall", libc::SYS_mlockall),
    ("mmap", libc::SYS_mmap),
    ("mprotect", libc::SYS_mprotect),
    ("mq_getsetattr", libc::SYS_mq_getsetattr),
    ("mq_notify", libc::SYS_mq_notify),
    ("mq_open", libc::SYS_mq_open),
    ("mq_timedreceive", libc::SYS_mq_timedreceive),
    ("mq_timedsend", libc::SYS_mq_timedsend),
    ("mq_unlink", libc::SYS_mq_unlink),
    ("mremap", libc::SYS_mremap),
    ("msgctl", libc::SYS_msgctl),
    ("msgget", libc::SYS_msgget),
    ("msgrcv", libc::SYS_msgrcv),
    ("msgsnd", libc::SYS_msgsnd),
    ("msync", libc::SYS_msync),
    ("munlock", libc::SYS_munlock),
    ("munlockall", libc::SYS_munlockall),
    ("munmap", libc::SYS_munmap),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("nanosleep", libc::SYS_nanosleep),
    ("newfstatat", libc::SYS_newfstatat),
    ("open", libc::SYS_open),
    ("openat", libc::SYS_openat),
    ("openat2", libc::SYS_openat2),
    ("pause", libc::SYS_pause),
    ("pidfd_open", libc::SYS_pidfd_open),
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
    ("pipe", libc::SYS_pipe),
    ("pipe2", libc::SYS_pipe2),
    ("pkey_alloc", libc::SYS_pkey_alloc),
    ("pkey_free", libc::SYS_pkey_free),
    ("pkey_mprotect", libc::SYS_pkey_mprotect),
    ("poll", libc::SYS_poll),
    ("ppoll", libc::SYS_ppoll),
    ("prctl", libc::SYS_prctl),
    ("pread64", libc::SYS_pread64),
    ("preadv", libc::SYS_preadv),
    ("preadv2", libc::SYS_preadv2),
    ("prlimit64", libc::SYS_prlimit64),
    ("process_mrelease", libc::SYS_process_mrelease),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pselect6", libc::SYS_pselect6),
    ("ptrace", libc::SYS_ptrace),
    ("pwrite64", libc::SYS_pwrite64),
    ("pwritev", libc::SYS_pwritev),
    ("pwritev2", libc::SYS_pwritev2),
    ("read", libc::SYS_read),
    ("readahead", libc::SYS_readahead),
    ("readlink", libc::SYS_readlink),
    ("readlinkat", libc::SYS_readlinkat),
    ("readv", libc::SYS_readv),
    ("recvfrom", libc::SYS_recvfrom),
    ("recvmmsg", libc::SYS_recvmmsg),
    ("recvmsg", libc::SYS_recvmsg),
    ("remap_file_pages", libc::SYS_remap_file_pages),
    ("removexattr", libc::SYS_removexattr),
    ("rename", libc::SYS_rename),
    ("renameat", libc::SYS_renameat),
    ("renameat2", libc::SYS_renameat2),
    ("restart_syscall", libc::SYS_restart_syscall),
    ("rmdir", libc::SYS_rmdir),
    ("rseq", libc::SYS_rseq),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigpending", libc::SYS_rt_sigpending),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("rt_sigsuspend", libc::SYS_rt_sigsuspend),
    ("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
    ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
    ("sched_getaffinity", libc::SYS_sched_getaffinity),
    ("sched_getattr", libc::SYS_sched_getattr),
    ("sched_getparam", libc::SYS_sched_getparam),
    ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
    ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
    ("sched_getscheduler", libc::SYS_sched_getscheduler),
    ("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
    ("sched_setaffinity", libc::SYS_sched_setaffinity),
    ("sched_setattr", libc::SYS_sched_setattr),
    ("sched_setparam", libc::SYS_sched_setparam),
    ("sched_setscheduler", libc::SYS_sched_setscheduler),
    ("sched_yield", libc::SYS_sched_yield),
    ("seccomp", libc::SYS_seccomp),
    ("select", libc::SYS_select),
    ("semctl", libc::SYS_semctl),
    ("semget", libc::SYS_semget),
    ("semop", libc::SYS_semop),
    ("semtimedop", libc::SYS_semtimedop),
    ("sendfile", libc::SYS_sendfile),
    ("sendmmsg", libc::SYS_sendmmsg),
    ("sendmsg", libc::SYS_sendmsg),
    ("sendto", libc::SYS_sendto),
    ("setfsgid", libc::SYS_setfsgid),
    ("setfsuid", libc::SYS_setfsuid),
    ("setgid", libc::SYS_setgid),
    ("setgroups", libc::SYS_setgroups),
    ("setitimer", libc::SYS_setitimer),
    ("setpgid", libc::SYS_setpgid),
    ("setpriority", libc::SYS_setpriority),
    ("setregid", libc::SYS_setregid),
    ("setresgid", libc::SYS_setresgid),
    ("setresuid", libc::SYS_setresuid),
    ("setreuid", libc::SYS_setreuid),
    ("setrlimit", libc::SYS_setrlimit),
    ("set_robust_list", libc::SYS_set_robust_list),
    ("setsid", libc::SYS_setsid),
    ("setsockopt", libc::SYS_setsockopt),
    ("set_thread_area", libc::SYS_set_thread_area),
    ("set_tid_address", libc::SYS_set_tid_address),
    ("setuid", libc::SYS_setuid),
    ("setxattr", libc::SYS_setxattr),
    ("shmat", libc::SYS_shmat),
    ("shmctl", libc::SYS_shmctl),
    ("shmdt", libc::SYS_shmdt),
    ("shmget", libc::SYS_shmget),
    ("shutdown", libc::SYS_shutdown),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("signalfd", libc::SYS_signalfd),
    ("signalfd4", libc::SYS_signalfd4),
    ("socketpair", libc::SYS_socketpair),
    ("splice", libc::SYS_splice),
    ("stat", libc::SYS_stat),
    ("statfs", libc::SYS_statfs),
    ("statx", libc::SYS_statx),
    ("symlink", libc::SYS_symlink),
    ("symlinkat", libc::SYS_symlinkat),
    ("sync", libc::SYS_sync),
    ("sync_file_range", libc::SYS_sync_file_range),
    ("syncfs", libc::SYS_syncfs),
    ("sysinfo", libc::SYS_sysinfo),
    ("tee", libc::SYS_tee),
    ("tgkill", libc::SYS_tgkill),
    ("time", libc::SYS_time),
    ("timer_create", libc::SYS_timer_create),
    ("timer_delete", libc::SYS_timer_delete),
    ("timer_getoverrun", libc::SYS_timer_getoverrun),
    ("timer_gettime", libc::SYS_timer_gettime),
    ("timer_settime", libc::SYS_timer_settime),
    ("timerfd_create", libc::SYS_timerfd_create),
    ("timerfd_gettime", libc::SYS_timerfd_gettime),
    ("timerfd_settime", libc::SYS_timerfd_settime),
    ("times", libc::SYS_times),
    ("tkill", libc::SYS_tkill),
    ("truncate", libc::SYS_truncate),
    ("umask", libc::SYS_umask),
    ("uname", libc::SYS_uname),
    ("unlink", libc::SYS_unlink),
    ("unlinkat", libc::SYS_unlinkat),
    ("utime", libc::SYS_utime),
    ("utimensat", libc::SYS_utimensat),
    ("utimes", libc::SYS_utimes),
    ("vfork", libc::SYS_vfork),
    ("vmsplice", libc::SYS_vmsplice),
    ("wait4", libc::SYS_wait4),
    ("waitid", libc::SYS_waitid),
    ("write", libc::SYS_write),
    ("writev", libc::SYS_writev),
    // `includes: arches amd64/x32(/x86)`.
    ("arch_prctl", libc::SYS_arch_prctl),
    ("modify_ldt", libc::SYS_modify_ldt),
];

/// The profile's `includes: caps` rules: syscalls allowed when the command holds the
/// capability.
pub(crate) const BY_CAPABILITY: &[(Capability, &[(&str, i64)])] = &[
    (
        Capability::CAP_DAC_READ_SEARCH,
        &[("open_by_handle_at", libc::SYS_open_by_handle_at)],
    ),
    (
        Capability::CAP_SYS_ADMIN,
        &[
            ("bpf", libc::SYS_bpf),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("fanotify_init", libc::SYS_fanotify_init),
            ("fsconfig", libc::SYS_fsconfig),
            ("fsmount", libc::SYS_fsmount),
            ("fsopen", libc::SYS_fsopen),
            ("fspick", libc::SYS_fspick),
            ("lookup_dcookie", libc::SYS_lookup_dcookie),
            ("mount", libc::SYS_mount),
            ("mount_setattr", libc::SYS_mount_setattr),
            ("move_mount", libc::SYS_move_mount),
            ("open_tree", libc::SYS_open_tree),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("quotactl", libc::SYS_quotactl),
            ("quotactl_fd", libc::SYS_quotactl_fd),
            ("setdomainname", libc::SYS_setdomainname),
            ("sethostname", libc::SYS_sethostname),
            ("setns", libc::SYS_setns),
            ("syslog", libc::SYS_syslog),
            ("umount2", libc::SYS_umount2),
            ("unshare", libc::SYS_unshare),
        ],
    ),
    (Capability::CAP_SYS_BOOT, &[("reboot", libc::SYS_reboot)]),
    (Capability::CAP_SYS_CHROOT, &[("chroot", libc::SYS_chroot)]),
    (
        Capability::CAP_SYS_MODULE,
        &[
            ("delete_module", libc::SYS_delete_module),
            ("init_module", libc::SYS_init_module),
            ("finit_module", libc::SYS_finit_module),
        ],
    ),
    (Capability::CAP_SYS_PACCT, &[("acct", libc::SYS_acct)]),
    (
        Capability::CAP_SYS_PTRACE,
        &[
            ("kcmp", libc::SYS_kcmp),
            ("pidfd_getfd", libc::SYS_pidfd_getfd),
            ("process_madvise", libc::SYS_process_madvise),
        ],
    ),
    (
        Capability::CAP_SYS_RAWIO,
        &[("iopl", libc::SYS_iopl), ("ioperm", libc::SYS_ioperm)],
    ),
    (
        Capability::CAP_SYS_TIME,
        &[
            ("settimeofday", libc::SYS_settimeofday),
            ("clock_settime", libc::SYS_clock_settime),
        ],
    ),
    (
        Capability::CAP_SYS_TTY_CONFIG,
        &[("vhangup", libc::SYS_vhangup)],
    ),
    (
        Capability::CAP_SYS_NICE,
        &[
            ("get_mempolicy", libc::SYS_get_mempolicy),
            ("mbind", libc::SYS_mbind),
            ("set_mempolicy", libc::SYS_set_mempolicy),
            ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
        ],
    ),
    (Capability::CAP_SYSLOG, &[("syslog", libc::SYS_syslog)]),
    (Capability::CAP_BPF, &[("bpf", libc::SYS_bpf)]),
    (
        Capability::CAP_PERFMON,
        &[("perf_event_open", libc::SYS_perf_event_open)],
    ),
];

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| format!("seccomp condition: {e}"))
}

/// The allowlist's rules for a command holding `caps`: syscall number → rules (an empty
/// list allows the syscall whatever its arguments; otherwise any matching rule allows it).
pub(crate) fn allow_rules(caps: &CapsHashSet) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in ALLOWED {
        rules.insert(*nr, Vec::new());
    }
    for (cap, calls) in BY_CAPABILITY {
        if caps.contains(cap) {
            for (_, nr) in *calls {
                rules.insert(*nr, Vec::new());
            }
        }
    }
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![cond(0, SeccompCmpOp::Ne, AF_VSOCK)?])
            .map_err(|e| format!("seccomp rule: {e}"))?],
    );
    let mut personality = Vec::new();
    for p in PERSONALITIES {
        personality.push(
            SeccompRule::new(vec![cond(0, SeccompCmpOp::Eq, p)?])
                .map_err(|e| format!("seccomp rule: {e}"))?,
        );
    }
    rules.insert(libc::SYS_personality, personality);
    if !caps.contains(&Capability::CAP_SYS_ADMIN) {
        // `clone` without namespace flags. `clone3` is allowed here and answered by the
        // second filter, which the kernel's "most restrictive wins" makes ENOSYS.
        rules.insert(
            libc::SYS_clone,
            vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                0,
            )?])
            .map_err(|e| format!("seccomp rule: {e}"))?],
        );
        rules.insert(libc::SYS_clone3, Vec::new());
    }
    Ok(rules)
}

/// Compiles the profile for a command holding `caps` into the BPF programs to install, in
/// order.
pub(crate) fn default_filters(caps: &CapsHashSet) -> Result<Vec<BpfProgram>, String> {
    let compile = |rules, mismatch, matched| -> Result<BpfProgram, String> {
        let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
            .map_err(|e| format!("seccomp filter: {e}"))?;
        BpfProgram::try_from(filter).map_err(|e| format!("compiling the seccomp filter: {e}"))
    };
    let mut programs = vec![compile(
        allow_rules(caps)?,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )?];
    if !caps.contains(&Capability::CAP_SYS_ADMIN) {
        programs.push(compile(
            BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
        )?);
    }
    Ok(programs)
}

/// Installs `programs` on the calling thread without setting `no_new_privs` (the caller
/// needs `CAP_SYS_ADMIN`). Every syscall made afterwards goes through them.
pub(crate) fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for prog in programs {
        let len = u16::try_from(prog.len())
            .map_err(|_| format!("seccomp filter too long ({} instructions)", prog.len()))?;
        let fprog = libc::sock_fprog {
            len,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(2) copies the program from `fprog`, which points at `prog`'s
        // instructions; both outlive the call. seccompiler's sock_filter has the kernel's
        // layout (u16, u8, u8, u32), as libc's does.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0 as libc::c_ulong,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(format!(
                "installing the seccomp filter: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn default_caps() -> CapsHashSet {
        crate::init::sandbox::DEFAULT_CAPS.into_iter().collect()
    }

    #[test]
    fn tables_have_unique_names_and_numbers() {
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        for (name, nr) in ALLOWED {
            assert!(names.insert(*name), "{name} listed twice");
            assert!(numbers.insert(*nr), "{name}: number {nr} listed twice");
        }
        for (_, calls) in BY_CAPABILITY {
            for (name, nr) in *calls {
                assert!(
                    !names.contains(name),
                    "{name} is both unconditional and by cap"
                );
                assert!(!numbers.contains(nr), "{name}: number {nr} already allowed");
            }
        }
        assert_eq!(ALLOWED.len(), names.len());
    }

    #[test]
    fn default_caps_rules() {
        let rules = allow_rules(&default_caps()).unwrap();
        // Never allowed by the profile, whatever the caps.
        for nr in [
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_userfaultfd,
            libc::SYS_kexec_load,
            libc::SYS_swapon,
            libc::SYS_pivot_root,
        ] {
            assert!(!rules.contains_key(&nr), "syscall {nr} allowed");
        }
        // CAP_SYS_ADMIN-only: refused with Docker's default caps.
        for nr in [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_sethostname,
        ] {
            assert!(!rules.contains_key(&nr), "syscall {nr} allowed");
        }
        // CAP_SYS_CHROOT is in the default set.
        assert_eq!(rules.get(&libc::SYS_chroot).map(Vec::len), Some(0));
        // Conditional rules.
        assert_eq!(rules[&libc::SYS_clone].len(), 1);
        assert_eq!(rules[&libc::SYS_personality].len(), PERSONALITIES.len());
        assert_eq!(rules[&libc::SYS_socket].len(), 1);
        assert_eq!(default_filters(&default_caps()).unwrap().len(), 2);
    }

    #[test]
    fn sys_admin_allows_namespaces_and_clone3() {
        let caps: CapsHashSet = [Capability::CAP_SYS_ADMIN].into_iter().collect();
        let rules = allow_rules(&caps).unwrap();
        for nr in [
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_clone,
            libc::SYS_clone3,
        ] {
            assert_eq!(rules.get(&nr).map(Vec::len), Some(0), "syscall {nr}");
        }
        assert_eq!(default_filters(&caps).unwrap().len(), 1);
    }

    /// Runs `probe` in a forked child with the default profile installed; returns the
    /// child's exit code.
    fn in_filtered_child(probe: fn() -> i32) -> i32 {
        let programs = default_filters(&default_caps()).unwrap();
        // SAFETY: the child only makes raw syscalls (no allocation, no locks) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = match install(&programs) {
                Ok(()) => probe(),
                Err(_) => 100,
            };
            // SAFETY: terminating the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child we forked.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    }

    #[test]
    fn filter_answers_like_docker() {
        fn probe() -> i32 {
            // SAFETY: each syscall gets arguments that are invalid or harmless; the filter
            // answers the refused ones before the kernel reads anything.
            unsafe {
                if errno_of(libc::syscall(libc::SYS_clone3, 0usize, 0usize)) != libc::ENOSYS {
                    return 1;
                }
                if errno_of(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)) != libc::EPERM {
                    return 2;
                }
                if errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)) != libc::EPERM {
                    return 3;
                }
                let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
                if errno_of(libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0)) != libc::EPERM {
                    return 4;
                }
                if errno_of(libc::syscall(libc::SYS_personality, 0x0040_0000usize)) != libc::EPERM {
                    return 5;
                }
                if errno_of(libc::syscall(libc::SYS_personality, 0xffff_ffffusize)) != 0 {
                    return 6;
                }
                if errno_of(libc::syscall(libc::SYS_socket, libc::AF_VSOCK, 1, 0)) != libc::EPERM {
                    return 7;
                }
                let fd = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    return 8;
                }
                libc::close(fd as i32);
                if errno_of(libc::syscall(libc::SYS_getpid)) != 0 {
                    return 9;
                }
                if errno_of(libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0)) != libc::EPERM {
                    return 10;
                }
                // no_new_privs stays off.
                if libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0 {
                    return 11;
                }
                if libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) != 2 {
                    return 12;
                }
            }
            0
        }
        assert_eq!(in_filtered_child(probe), 0);
    }
}
