//! The `holdfast` command line: `run` a node, `check` a config, `ctl` a running cluster,
//! `import-haproxy` a `haproxy.cfg`.

mod backend;
mod ctl;
mod demo;
mod import;
mod process;
mod render;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use ctl::CtlArgs;

/// holdfast: a clustered HTTP(S) load balancer with a Raft-replicated stick table.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node.
    Run {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Overrides `node.data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a config file and report every problem with its key and line.
    Check {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Talk to a running node's admin API.
    Ctl(CtlArgs),
    /// Start a three-node cluster on loopback with no configuration (Ctrl-C stops it).
    Demo,
    /// Translate a haproxy.cfg into a holdfast config (stdout, or --output); every line
    /// not translated as written is listed on standard error with its number and why.
    ImportHaproxy {
        /// The HAProxy configuration file.
        file: PathBuf,
        /// Write the holdfast config here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run a tiny demo/test HTTP server answering its name (sets `PHPSESSID`).
    Backend {
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Name it answers with.
        #[arg(long)]
        name: String,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Run { .. } | Command::Demo | Command::Backend { .. }
    ) {
        quiet_on_closed_output();
    }
    match cli.command {
        Command::Run { config, data_dir } => run::run(&config, data_dir),
        Command::Check { config } => run::check(&config),
        Command::Ctl(args) => ctl::ctl(args),
        Command::Demo => demo::demo(),
        Command::ImportHaproxy { file, output } => import::import_haproxy(&file, output.as_deref()),
        Command::Backend { listen, name } => backend::backend(listen, name),
    }
}

/// A command whose output is piped into a reader that stops early (`holdfast check | head
/// -1`) ends quietly, as Unix tools do, instead of panicking on the broken pipe: Rust
/// ignores SIGPIPE, so restore its default. Sockets are unaffected (they are written with
/// `MSG_NOSIGNAL`); servers keep ignoring it, so a closed log pipe never kills a node.
fn quiet_on_closed_output() {
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
