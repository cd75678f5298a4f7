//! `phalanx pki`: a small certificate authority for test and exercise federations —
//! a CA, and certificates for nodes that serve TAXII over TLS and connect to their peers
//! with the same certificate (server and client authentication).
//!
//! Files: `DIR/ca.pem` (the CA certificate partners trust), `DIR/ca.key` (its key, mode
//! 0600) and `DIR/ca.name` (its common name, from which the issuer is rebuilt). A node
//! certificate is `NAME.pem` + `NAME.key`; `issue` prints its SHA-256 fingerprint, which
//! the partners register with `phalanx partner add --cert-fingerprint` (or `--cert FILE`).

use anyhow::Context;
use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum PkiCmd {
    /// Create a certificate authority in DIR
    Ca {
        /// Directory for ca.pem, ca.key, ca.name
        dir: PathBuf,
        /// Common name of the CA
        #[arg(long, default_value = "Phalanx exercise CA")]
        name: String,
    },
    /// Issue a node certificate (TLS server and client) signed by the CA in --ca
    Issue {
        /// Directory of the CA
        #[arg(long)]
        ca: PathBuf,
        /// Common name (the node or organisation)
        name: String,
        /// DNS names the node is reached at; repeatable [default: localhost]
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP addresses the node is reached at; repeatable [default: 127.0.0.1]
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
        /// Output prefix: writes PREFIX.pem and PREFIX.key [default: CA dir/NAME]
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn ca_params(name: &str) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

fn write(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn run(cmd: PkiCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        PkiCmd::Ca { dir, name } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let key = KeyPair::generate()?;
            let cert = ca_params(&name)?.self_signed(&key)?;
            write(&dir.join("ca.key"), &key.serialize_pem(), true)?;
            write(&dir.join("ca.pem"), &cert.pem(), false)?;
            write(&dir.join("ca.name"), &name, false)?;
            if json {
                crate::report::print_json(&serde_json::json!({"ca": dir.join("ca.pem")}));
            } else {
                println!("created CA {name:?} in {}", dir.display());
            }
        }
        PkiCmd::Issue {
            ca,
            name,
            dns,
            ips,
            out,
        } => {
            let read = |f: &str| {
                std::fs::read_to_string(ca.join(f))
                    .with_context(|| format!("cannot read {}", ca.join(f).display()))
            };
            let ca_key = KeyPair::from_pem(&read("ca.key")?).context("ca.key")?;
            let issuer = Issuer::new(ca_params(read("ca.name")?.trim())?, ca_key);
            let dns = if dns.is_empty() && ips.is_empty() {
                vec!["localhost".to_owned()]
            } else {
                dns
            };
            let ips = if ips.is_empty() {
                vec![std::net::IpAddr::from([127, 0, 0, 1])]
            } else {
                ips
            };
            let mut p = CertificateParams::new(dns)?;
            p.subject_alt_names
                .extend(ips.into_iter().map(SanType::IpAddress));
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name.as_str());
            p.distinguished_name = dn;
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            p.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate()?;
            let cert = p.signed_by(&key, &issuer)?;
            let prefix = out.unwrap_or_else(|| ca.join(&name));
            let with = |ext: &str| {
                let mut s = prefix.clone().into_os_string();
                s.push(ext);
                PathBuf::from(s)
            };
            write(&with(".key"), &key.serialize_pem(), true)?;
            write(&with(".pem"), &cert.pem(), false)?;
            let fp = {
                use sha2::Digest;
                phalanx_node::auth::hex(&sha2::Sha256::digest(cert.der()))
            };
            if json {
                crate::report::print_json(&serde_json::json!({
                    "cert": with(".pem"), "key": with(".key"), "fingerprint": fp,
                }));
            } else {
                // The fingerprint alone on stdout: scripts capture it.
                println!("{fp}");
                eprintln!(
                    "issued {} and {} for {name}; register the fingerprint with `phalanx partner add ... --cert-fingerprint`",
                    with(".pem").display(),
                    with(".key").display()
                );
            }
        }
    }
    Ok(())
}
