//! The `sightline` binary: serve, migrate, and bootstrap accounts.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sightline_api::{AccountRole, Server, cli, telemetry};
use sightline_config::Settings;

#[derive(Parser)]
#[command(
    name = "sightline",
    version,
    about = "Self-hostable live technical interviews"
)]
struct Args {
    /// A TOML settings file layered over the built-in defaults.
    #[arg(long, global = true, env = "SIGHTLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server until SIGTERM or Ctrl-C.
    Serve,
    /// Records rooms cluster nodes host (their `workers.recording = "remote"`), taking jobs
    /// from the cluster's work queue, until SIGTERM or Ctrl-C (a second one stops it with its
    /// jobs unfinished, for other workers to resume).
    Worker,
    /// Applies database migrations and exits.
    Migrate,
    /// Manages accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates an account with any role.
    Create {
        /// Email address (the sign-in name).
        #[arg(long)]
        email: String,
        /// Name shown to others.
        #[arg(long)]
        name: String,
        /// candidate, interviewer, reviewer or admin.
        #[arg(long)]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long, conflicts_with = "password_file")]
        password_stdin: bool,
        /// Generate a password and write it to this file (mode 0600) instead of printing it.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Do nothing (and succeed) if an admin already exists; for first-run scripts.
        #[arg(long)]
        if_no_admin: bool,
    },
    /// Sets a new password for an account (every session of it ends), for someone who forgot
    /// theirs when this server sends no email.
    SetPassword {
        /// Email address of the account.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long, conflicts_with = "password_file")]
        password_stdin: bool,
        /// Generate a password and write it to this file (mode 0600) instead of printing it.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref()).context("loading settings")?;
    match args.command {
        Command::Serve => serve(settings).await,
        Command::Worker => worker(settings).await,
        Command::Migrate => {
            cli::migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    name,
                    role,
                    password_stdin,
                    password_file,
                    if_no_admin,
                },
        } => {
            let role: AccountRole = role.parse().map_err(anyhow::Error::msg)?;
            if if_no_admin && cli::has_admin(&settings).await? {
                println!("an admin account already exists; nothing to do");
                return Ok(());
            }
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                generate_password()?
            };
            if !password_stdin {
                match &password_file {
                    Some(path) => write_private(path, &password)?,
                    None => println!("password: {password}"),
                }
            }
            let created = cli::create_user(&settings, &email, &name, role, password).await;
            if created.is_err()
                && let Some(path) = &password_file
            {
                // The file must never name a password for an account that does not exist.
                let _ = std::fs::remove_file(path);
            }
            let id = created?;
            println!("created {role} {email} ({id})");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::SetPassword {
                    email,
                    password_stdin,
                    password_file,
                },
        } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                generate_password()?
            };
            let id = cli::set_password(&settings, &email, password.clone()).await?;
            if !password_stdin {
                match &password_file {
                    Some(path) => write_private(path, &password)?,
                    None => println!("password: {password}"),
                }
            }
            println!("set a new password for {email} ({id}); its sessions ended");
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let server = Server::build(settings)
        .await
        .context("starting sightline")?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, "sightline listening on http://{addr}");
    let signals = stop_signals();
    let mut first = signals.clone();
    let mut second = signals;
    let shutdown = async move {
        let _ = first.wait_for(|n| *n >= 1).await;
        tracing::info!("shutdown requested; finishing in-flight requests");
    };
    let force = async move {
        let _ = second.wait_for(|n| *n >= 2).await;
    };
    server.run_until(shutdown, force).await?;
    tracing::info!("sightline stopped");
    Ok(())
}

async fn worker(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let signals = stop_signals();
    let mut first = signals.clone();
    let mut second = signals;
    let stop = async move {
        let _ = first.wait_for(|n| *n >= 1).await;
    };
    let force = async move {
        let _ = second.wait_for(|n| *n >= 2).await;
    };
    sightline_api::worker::run(settings, stop, force)
        .await
        .context("running the worker")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Counts SIGTERMs and Ctrl-Cs: the first stops the server (a node of a cluster drains first),
/// the second ends the drain.
fn stop_signals() -> tokio::sync::watch::Receiver<u32> {
    use tokio::signal::unix::{SignalKind, signal};
    let (count, counted) = tokio::sync::watch::channel(0u32);
    // Made once, so no signal falls between two waits; one that cannot be listened to is never
    // heard (rather than heard at once).
    let mut term = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = next_signal(term.as_mut()) => {},
                () = next_signal(interrupt.as_mut()) => {},
            }
            count.send_modify(|n| *n = n.saturating_add(1));
        }
    });
    counted
}

/// The next signal on `stream`; never without one.
async fn next_signal(stream: Option<&mut tokio::signal::unix::Signal>) {
    match stream {
        Some(stream) => {
            stream.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn generate_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(sightline_api::auth::opaque::encode(&bytes))
}

fn write_private(path: &PathBuf, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        bail!("{} exists already; not overwriting", path.display());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}
