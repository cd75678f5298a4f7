//! `phalanx token create|list|revoke` and `phalanx user add|list`: who may use the TAXII
//! server, for which organisation, with which rights.

use crate::{Status, datadir, report};
use clap::{Args, Subcommand};
use phalanx_store::{Access, Principal, PrincipalKind};
use std::io::Read;
use std::path::Path;

/// Read and write grants, as given on the command line.
#[derive(Args, Debug)]
pub struct Grants {
    /// Collections it may read (alias, id or title); a bare --read means every collection
    #[arg(long, num_args = 0.., value_name = "C")]
    read: Option<Vec<String>>,
    /// Collections it may write, which implies reading; a bare --write means every collection
    #[arg(long, num_args = 0.., value_name = "C")]
    write: Option<Vec<String>>,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a bearer token; prints the token alone on stdout (it is stored only hashed)
    Create {
        /// Organisation the token acts for: this node's own (see `init --org`) or a
        /// registered partner; any other organisation receives TLP:CLEAR only
        #[arg(long)]
        org: String,
        /// A label to recognise the token by (default: the organisation)
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        grants: Grants,
    },
    /// List tokens (never the secrets)
    List,
    /// Revoke a token by id (as shown by `token list`)
    Revoke {
        /// Token id (tok-...)
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user for HTTP Basic authentication (password hashed with argon2id)
    Add {
        /// User name
        name: String,
        /// Organisation the user acts for: this node's own or a registered partner
        #[arg(long)]
        org: String,
        /// Read the password from stdin (first line); otherwise one is generated and printed
        #[arg(long)]
        password_stdin: bool,
        /// Node administrator: every right, every status resource
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        grants: Grants,
    },
    /// List users and tokens
    List,
}

fn access_text(a: &Access) -> String {
    match a {
        Access::None => "-".into(),
        Access::All => "*".into(),
        Access::Collections(ids) => ids.join(","),
    }
}

fn print_principals(ps: &[Principal], json: bool) {
    if json {
        let v: Vec<_> = ps
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id, "kind": p.kind, "name": p.name, "org": p.org,
                    "read": p.read, "write": p.write, "admin": p.admin,
                    "created": report::micros_text(p.created_us),
                    "revoked": p.revoked_us.map(report::micros_text),
                })
            })
            .collect();
        report::print_json(&v);
        return;
    }
    println!(
        "{:<18}  {:<16}  {:<16}  {:<24}  {:<24}  {:<27}  REVOKED",
        "ID", "NAME", "ORG", "READ", "WRITE", "CREATED"
    );
    for p in ps {
        println!(
            "{:<18}  {:<16}  {:<16}  {:<24}  {:<24}  {:<27}  {}",
            p.id,
            p.name,
            p.org,
            if p.admin {
                "* (admin)".into()
            } else {
                access_text(&p.read)
            },
            if p.admin {
                "* (admin)".into()
            } else {
                access_text(&p.write)
            },
            report::micros_text(p.created_us),
            p.revoked_us.map_or("-".into(), report::micros_text)
        );
    }
}

/// Warns (stderr) when an organisation is neither this node's nor a partner: the sharing
/// policy treats it as an outsider.
fn warn_outsider(node: &phalanx_node::Node, org: &str) -> anyhow::Result<()> {
    let policy = node.policy()?;
    if matches!(
        policy.recipient(org),
        phalanx_policy::Recipient::Outsider(_)
    ) {
        eprintln!(
            "warning: organisation {org:?} is neither this node's ({}) nor a registered partner: \
             it receives TLP:CLEAR objects only until `phalanx partner add {org} ...` registers it",
            node.own_org()
        );
    }
    Ok(())
}

pub fn token(data: &Path, json: bool, cmd: TokenCmd) -> anyhow::Result<Status> {
    let node = datadir::open_node(data)?;
    let now = datadir::now_micros();
    match cmd {
        TokenCmd::Create { org, label, grants } => {
            warn_outsider(&node, &org)?;
            let read = node.resolve_access(grants.read.as_deref())?;
            let write = node.resolve_access(grants.write.as_deref())?;
            let (p, token) =
                node.create_token(label.as_deref().unwrap_or(&org), &org, read, write, now)?;
            if json {
                report::print_json(&serde_json::json!({
                    "id": p.id, "token": token, "org": p.org, "read": p.read, "write": p.write,
                }));
            } else {
                // The token alone on stdout: scripts capture it with $(...).
                println!("{token}");
                eprintln!("created token {} for {}; it is shown only now", p.id, p.org);
            }
        }
        TokenCmd::List => {
            let tokens: Vec<_> = node
                .store()
                .principals()?
                .into_iter()
                .filter(|p| p.kind == PrincipalKind::Token)
                .collect();
            print_principals(&tokens, json);
        }
        TokenCmd::Revoke { id } => {
            let p = node.store().principal(&id)?;
            anyhow::ensure!(p.kind == PrincipalKind::Token, "{id} is not a token");
            node.store().revoke_principal(&id, now)?;
            if !json {
                println!("revoked {id}");
            }
        }
    }
    Ok(Status::Ok)
}

pub fn user(data: &Path, json: bool, cmd: UserCmd) -> anyhow::Result<Status> {
    let node = datadir::open_node(data)?;
    match cmd {
        UserCmd::Add {
            name,
            org,
            password_stdin,
            admin,
            grants,
        } => {
            if !admin {
                warn_outsider(&node, &org)?;
            }
            let read = node.resolve_access(grants.read.as_deref())?;
            let write = node.resolve_access(grants.write.as_deref())?;
            let (password, generated) = if password_stdin {
                let mut s = String::new();
                std::io::stdin().take(64 * 1024).read_to_string(&mut s)?;
                let line = s.lines().next().unwrap_or("").to_owned();
                (line, false)
            } else {
                (phalanx_node::auth::new_password(), true)
            };
            let p = node.add_user(
                &name,
                &org,
                &password,
                read,
                write,
                admin,
                datadir::now_micros(),
            )?;
            if json {
                let mut v = serde_json::json!({"id": p.id, "name": p.name, "org": p.org});
                if generated {
                    v["password"] = password.into();
                }
                report::print_json(&v);
            } else if generated {
                println!("{password}");
                eprintln!(
                    "created user {name} for {org}; the generated password is shown only now"
                );
            } else {
                eprintln!("created user {name} for {org}");
            }
        }
        UserCmd::List => print_principals(&node.store().principals()?, json),
    }
    Ok(Status::Ok)
}
