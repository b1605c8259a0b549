//! `ccnqctl pki` and `ccnqctl token`: credentials for a test or small site, without
//! openssl incantations. A large site will use its own CA; these files are ordinary PEM.

use ccnq_pki::{Issued, Validity};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create a site in DIR: the admin CA (ca.pem, ca.key), an admin certificate
    /// (admin.crt, admin.key) and a server certificate for the given names.
    Init {
        dir: PathBuf,
        /// Names and addresses for the server certificate (repeat for several).
        #[arg(long = "server-name", required = true)]
        server_names: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Issue a role certificate NAME.crt / NAME.key with the CA in DIR.
    Issue {
        dir: PathBuf,
        /// The certificate's common name (who, in the audit log).
        #[arg(long)]
        name: String,
        /// reader, operator or admin.
        #[arg(long)]
        role: String,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Issue a server certificate server.crt / server.key with the CA in DIR.
    Server {
        dir: PathBuf,
        #[arg(long = "server-name", required = true)]
        server_names: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a new token: prints the secret (give it to the script) and the lines for
    /// ccnqd.toml (which stores only its hash).
    New {
        #[arg(long)]
        name: String,
        /// reader, operator or admin.
        #[arg(long)]
        role: String,
    },
}

pub fn run_pki(cmd: &PkiCommand) -> Result<(), String> {
    match cmd {
        PkiCommand::Init {
            dir,
            server_names,
            days,
        } => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if dir.join("ca.key").exists() {
                return Err(format!(
                    "{} already holds a CA; refusing to replace it",
                    dir.display()
                ));
            }
            let validity = Validity::days_from_now(*days);
            let ca = ccnq_pki::issue_ca("CCNQ admin CA", Validity::days_from_now(3650))
                .map_err(|e| e.to_string())?;
            write_pair(dir, "ca", &ca, ".pem")?;
            let admin = ccnq_pki::issue_client(&ca, "admin", "admin", validity)
                .map_err(|e| e.to_string())?;
            write_pair(dir, "admin", &admin, ".crt")?;
            let server =
                ccnq_pki::issue_server(&ca, server_names, validity).map_err(|e| e.to_string())?;
            write_pair(dir, "server", &server, ".crt")?;
            println!(
                "site created in {}: ca.pem ca.key admin.crt admin.key server.crt server.key",
                dir.display()
            );
            println!("keep ca.key offline; give ccnqd ca.pem (api.admin_ca) and server.crt/server.key (api.cert/api.key)");
            Ok(())
        }
        PkiCommand::Issue {
            dir,
            name,
            role,
            days,
        } => {
            let ca = load_ca(dir)?;
            let cert = ccnq_pki::issue_client(&ca, name, role, Validity::days_from_now(*days))
                .map_err(|e| e.to_string())?;
            write_pair(dir, name, &cert, ".crt")?;
            println!("issued {}/{name}.crt ({role})", dir.display());
            Ok(())
        }
        PkiCommand::Server {
            dir,
            server_names,
            days,
        } => {
            let ca = load_ca(dir)?;
            let cert = ccnq_pki::issue_server(&ca, server_names, Validity::days_from_now(*days))
                .map_err(|e| e.to_string())?;
            write_pair(dir, "server", &cert, ".crt")?;
            println!(
                "issued {}/server.crt for {}",
                dir.display(),
                server_names.join(", ")
            );
            Ok(())
        }
    }
}

pub fn run_token(cmd: &TokenCommand) -> Result<(), String> {
    let TokenCommand::New { name, role } = cmd;
    role.parse::<ccnq_api::Role>()?;
    let secret = ccnq_pki::new_token().map_err(|e| e.to_string())?;
    println!("{secret}");
    eprintln!("# add to ccnqd.toml (the daemon stores only the hash):");
    eprintln!(
        "[[api.tokens]]\nname = {name:?}\nrole = {role:?}\nsha256 = \"{}\"",
        ccnq_pki::token_hash(&secret)
    );
    Ok(())
}

fn load_ca(dir: &Path) -> Result<Issued, String> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    Ok(Issued {
        cert_pem: read("ca.pem")?,
        key_pem: read("ca.key")?,
    })
}

fn write_pair(dir: &Path, name: &str, issued: &Issued, cert_ext: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if name.contains('/') || name.starts_with('.') {
        return Err(format!("{name:?} cannot be a file name"));
    }
    let cert = dir.join(format!("{name}{cert_ext}"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &issued.cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    f.write_all(issued.key_pem.as_bytes())
        .map_err(|e| format!("{}: {e}", key.display()))
}
