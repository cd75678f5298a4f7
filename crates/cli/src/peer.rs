//! `phalanx peer …`: federation feeds with partner nodes and their health. The running
//! `phalanx serve` picks up changes within a second.

use crate::datadir;
use crate::report::print_json;
use clap::Subcommand;
use phalanx_store::FeedDirection;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Pull a partner's TAXII collection into a local collection
    Pull {
        /// Partner id
        partner: String,
        /// The partner's collection URL (…/{api-root}/collections/{id}/)
        url: String,
        /// Local collection (id, alias or title)
        #[arg(long)]
        into: String,
        /// Only objects the partner added after this time (RFC 3339) [default: all]
        #[arg(long)]
        since: Option<String>,
    },
    /// Push a local collection to a partner's TAXII collection (what the policy allows)
    Push {
        /// Partner id
        partner: String,
        /// The partner's collection URL
        url: String,
        /// Local collection (id, alias or title)
        #[arg(long)]
        from: String,
        /// Only objects added here after this time (RFC 3339) [default: all]
        #[arg(long)]
        since: Option<String>,
    },
    /// Let a partner's node (its client certificate) push into a local collection
    Accept {
        /// Partner id
        partner: String,
        /// Local collection (id, alias or title)
        #[arg(long)]
        into: String,
    },
    /// Feeds and their health: last success, lag, objects moved, failures, last error
    #[command(alias = "list")]
    Status,
    /// Remove a feed by id (as shown by `peer status`)
    Remove {
        /// Feed id
        id: i64,
    },
}

fn since(s: Option<&str>) -> anyhow::Result<Option<i64>> {
    s.map(|t| {
        phalanx_stix::Timestamp::parse(t)
            .map(|t| t.as_micros())
            .map_err(|e| anyhow::anyhow!("--since {t:?}: {e}"))
    })
    .transpose()
}

pub fn run(dir: &Path, json: bool, cmd: PeerCmd) -> anyhow::Result<()> {
    let node = datadir::open_node(dir)?;
    let added = match cmd {
        PeerCmd::Pull {
            partner,
            url,
            into,
            since: s,
        } => Some(node.add_feed(
            &partner,
            FeedDirection::Pull,
            &url,
            &into,
            since(s.as_deref())?,
        )?),
        PeerCmd::Push {
            partner,
            url,
            from,
            since: s,
        } => Some(node.add_feed(
            &partner,
            FeedDirection::Push,
            &url,
            &from,
            since(s.as_deref())?,
        )?),
        PeerCmd::Accept { partner, into } => {
            Some(node.add_feed(&partner, FeedDirection::Accept, "", &into, None)?)
        }
        PeerCmd::Remove { id } => {
            node.store().remove_feed(id)?;
            if !json {
                println!("removed feed {id}");
            }
            None
        }
        PeerCmd::Status => {
            let feeds = node.feeds()?;
            let now = datadir::now_micros();
            let mut rows = Vec::new();
            for f in feeds {
                let lag = node.feed_lag(&f, now)?;
                let federates = node.federates_with(&f.partner, now)?;
                rows.push((f, lag, federates));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(f, lag, federates)| {
                        let mut v = serde_json::to_value(f).unwrap_or_default();
                        v["lag_us"] = serde_json::json!(lag);
                        v["federates"] = (*federates).into();
                        v
                    })
                    .collect();
                print_json(&v);
            } else {
                println!(
                    "{:>3}  {:<12}  {:<6}  {:<9}  {:<8}  {:>8}  {:>8}  {:>3}  REMOTE / LAST ERROR",
                    "ID", "PARTNER", "DIR", "FEDERATES", "LAST OK", "LAG", "MOVED", "ERR"
                );
                let secs = |us: i64| format!("{:.1}s", us as f64 / 1e6);
                for (f, lag, federates) in rows {
                    let ok = f
                        .last_ok_us
                        .map_or("never".into(), |t| format!("{} ago", secs(now - t)));
                    println!(
                        "{:>3}  {:<12}  {:<6}  {:<9}  {:<8}  {:>8}  {:>8}  {:>3}  {}{}",
                        f.id,
                        f.partner,
                        f.direction.as_str(),
                        if federates { "yes" } else { "no" },
                        ok,
                        lag.map_or("-".into(), secs),
                        f.moved,
                        f.failures,
                        if f.remote.is_empty() { "-" } else { &f.remote },
                        f.last_error
                            .as_deref()
                            .map_or(String::new(), |e| format!("\n     last error: {e}"))
                    );
                }
            }
            None
        }
    };
    if let Some(f) = added {
        if json {
            print_json(&f);
        } else {
            println!(
                "added {} feed {} with {} ({})",
                f.direction.as_str(),
                f.id,
                f.partner,
                if f.remote.is_empty() {
                    &f.local
                } else {
                    &f.remote
                }
            );
        }
    }
    Ok(())
}
