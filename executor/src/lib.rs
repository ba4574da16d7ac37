//! kiln's executor: snapshots, the RUN sandbox, file ops.
//!
//! [`Executor`] implements [`kiln_ir::Worker`]. RUN and COPY run in a re-executed,
//! single-threaded init (`kiln __sandbox-init <spec>`): the binary must call
//! [`run_init_if_requested`] first thing in `main`, and may call [`cancel_all`] from its
//! SIGINT handler.
//!
//! ```no_run
//! // First thing in the kiln binary's main(), before tokio starts:
//! kiln_executor::run_init_if_requested();
//! // … then start tokio and build an Executor with InitCommand::current_exe().
//! ```

mod entitlements;
mod error;
mod executor;
mod fileop;
mod init;
mod mounts;
mod process;
mod remote;
mod snapshots;
mod spec;
mod userns;
mod users;

pub use entitlements::{Entitlements, NETWORK_HOST, SECURITY_INSECURE};
pub use error::ExecutorError;
pub use executor::{Executor, ExecutorOptions, InitCommand};
pub use init::run_init_if_requested;
pub use mounts::{SecretSource, Session};
pub use process::cancel_all;
pub use remote::fetch_git_context;
pub use spec::INIT_SUBCOMMAND;
pub use userns::{in_user_namespace, is_rootless_child, run_in_user_namespace};
