//! `roomtape users`: accounts from the command line — the first admin on a fresh server, API
//! tokens for scripts.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::commands::Context;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create an account; the password comes from ROOMTAPE_PASSWORD or the first line of stdin
    Add {
        /// User name (letters, digits, '.', '_', '-'; at most 32)
        username: String,
        /// The name shown to others [default: the user name]
        #[arg(long)]
        display_name: Option<String>,
        /// Make the account an admin (the first account always is)
        #[arg(long)]
        admin: bool,
    },
    /// Set a new password for an account and sign it out everywhere; the password comes from
    /// ROOMTAPE_PASSWORD or the first line of stdin (never the command line)
    ResetPassword {
        /// User name
        username: String,
    },
    /// List accounts
    List,
    /// Create an API token for an account and print it (shown only once)
    Token {
        /// User name
        username: String,
        /// A name to tell the token apart
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

pub async fn users(ctx: &Context, cmd: UsersCommand) -> anyhow::Result<()> {
    // Only `add` may start a catalog (the first admin of a fresh server); the others need one.
    let catalog = match cmd {
        UsersCommand::Add { .. } => ctx.catalog_or_create().await?,
        _ => ctx.catalog().await?,
    };
    match cmd {
        UsersCommand::Add {
            username,
            display_name,
            admin,
        } => {
            let hash = new_password_hash()?;
            let mut user = catalog
                .create_user(
                    &username,
                    display_name.as_deref().unwrap_or(&username),
                    &hash,
                )
                .await?;
            if admin && !user.is_admin {
                catalog.set_admin(user.id, true).await?;
                user.is_admin = true;
            }
            if ctx.json {
                ctx.print_json(&user)?;
            } else if !ctx.quiet {
                println!(
                    "created {}{} ({})",
                    user.username,
                    if user.is_admin { ", admin" } else { "" },
                    user.id
                );
            }
        }
        UsersCommand::ResetPassword { username } => {
            let user = catalog.user_by_username(&username).await?;
            let hash = new_password_hash()?;
            let ended = catalog.reset_password(user.id, &hash).await?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({
                    "id": user.id,
                    "username": user.username,
                    "sessions_ended": ended,
                }))?;
            } else if !ctx.quiet {
                println!(
                    "new password set for {}; {ended} session(s) signed out",
                    user.username
                );
            }
        }
        UsersCommand::List => {
            let users = catalog.users().await?;
            if ctx.json {
                ctx.print_json(&users)?;
            } else {
                for u in users {
                    println!(
                        "{}  {:<32} {}{}",
                        u.id,
                        u.username,
                        u.display_name,
                        if u.is_admin { "  (admin)" } else { "" }
                    );
                }
            }
        }
        UsersCommand::Token { username, name } => {
            let user = catalog.user_by_username(&username).await?;
            let secret = roomtape_web::auth::new_api_token();
            catalog
                .create_api_token(
                    user.id,
                    &name,
                    &roomtape_web::auth::digest(&secret),
                    &secret[..10],
                )
                .await?;
            println!("{secret}");
        }
    }
    Ok(())
}

/// The hash of a new password read from `ROOMTAPE_PASSWORD` or the first line of stdin (never
/// from the command line, where other users could see it), checked like the sign-up form's.
fn new_password_hash() -> anyhow::Result<String> {
    let password = match std::env::var("ROOMTAPE_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if let Err(e) = roomtape_web::auth::check_new_password(&password) {
        bail!("{}", e.message());
    }
    roomtape_core::hash_password(&password).map_err(anyhow::Error::from)
}
