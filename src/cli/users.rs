//! `aiwarden user add | list | remove | passwd`: the web console's local accounts, kept in
//! the store; every change is also a chained `event` row naming who made it. `aiwarden user
//! hash` prints a password's argon2id PHC string for `provision.toml` (no store touched).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use super::incidents::{fmt_micros, StoreArgs};
use super::CmdResult;
use crate::console::{hash_password, MAX_PASSWORD, MIN_PASSWORD};
use crate::error::{Error, Result};
use crate::store::{check_user_name, Role, Store};

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum RoleArg {
    /// Reads the dashboard, incidents (device labels only) and the rules.
    Viewer,
    /// Also acknowledges incidents and downloads reports.
    Reviewer,
    /// Everything a reviewer does.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Reviewer => Role::Reviewer,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Where a new password comes from.
#[derive(clap::Args)]
pub(super) struct PasswordArgs {
    /// Read the password from the first line of this file (for scripts). Without it, the
    /// password is asked for twice without echo on a terminal, or read from the first line
    /// of standard input.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

/// `aiwarden user ...`.
#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Add a console account.
    Add {
        /// The login name (letters, digits, '.', '_', '-', '@').
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the console accounts.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a console account (its sessions end within a minute).
    Remove {
        /// The login name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the argon2id PHC string of a password, for `admin_password_hash` in
    /// provision.toml (read as `user add` reads it; no store is touched).
    Hash {
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set an account's password.
    Passwd {
        /// The login name.
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Who is changing accounts, as the chain records it: `cli:<login>`.
fn actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let who: String = who.chars().filter(|c| !c.is_control()).take(64).collect();
    format!("cli:{who}")
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// The new password: from `--password-file`, a terminal (twice, no echo) or standard input.
fn read_password(a: &PasswordArgs, name: &str) -> Result<String> {
    let password = if let Some(path) = &a.password_file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        first_line(&text)
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            return Err(Error::Usage("the passwords differ".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        first_line(&line)
    };
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(Error::Usage(format!(
            "a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    Ok(password)
}

pub(super) fn run(c: Command) -> CmdResult {
    let now = crate::store::now_micros();
    match c {
        Command::Add {
            name,
            role,
            password,
            store,
        } => {
            check_user_name(&name)?;
            let path = store.path()?;
            let hash = hash_password(&read_password(&password, &name)?)?;
            let role = Role::from(role);
            Store::open(&path)?.add_user(now, &name, role, &hash, &actor())?;
            println!("user {name} added ({role})");
            Ok(())
        }
        Command::List { json, store } => {
            let users = Store::open_read_only(&store.path()?)?.users()?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &users).map_err(std::io::Error::from)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(out, "{:<32} {:<9} {:<20} STATE", "NAME", "ROLE", "ADDED")?;
            for u in users {
                writeln!(
                    out,
                    "{:<32} {:<9} {:<20} {}",
                    u.name,
                    u.role,
                    fmt_micros(u.created),
                    if u.disabled { "disabled" } else { "active" }
                )?;
            }
            Ok(())
        }
        Command::Hash { password } => {
            println!(
                "{}",
                hash_password(&read_password(&password, "the account")?)?
            );
            Ok(())
        }
        Command::Remove { name, store } => {
            Store::open(&store.path()?)?.remove_user(now, &name, &actor())?;
            println!("user {name} removed");
            Ok(())
        }
        Command::Passwd {
            name,
            password,
            store,
        } => {
            let path = store.path()?;
            let mut st = Store::open(&path)?;
            if st.user(&name)?.is_none() {
                return Err(Error::Usage(format!("no user {name:?}")));
            }
            let hash = hash_password(&read_password(&password, &name)?)?;
            st.set_password(now, &name, &hash, &actor())?;
            println!("password of {name} set");
            Ok(())
        }
    }
}
