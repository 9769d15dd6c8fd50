//! The command line every client takes, and the gRPC target it names.
//!
//! ```
//! use fibonacci_grpc::client::{ClientOptions, DEFAULT_ADDRESS};
//! use structopt::StructOpt;
//!
//! // No argument: the guide's address.
//! let options = ClientOptions::from_iter_safe(["client_unary"])?;
//! assert_eq!(options.address, DEFAULT_ADDRESS);
//! assert_eq!(options.connect_timeout, 3);
//! assert_eq!(options.tls_ca, None);
//!
//! // A client certificate without a CA to check the server against is refused.
//! let half_tls = ["client_unary", "--tls-cert", "client.pem", "--tls-key", "client.key"];
//! assert!(ClientOptions::from_iter_safe(half_tls).is_err());
//! # Ok::<(), structopt::clap::Error>(())
//! ```
//!
//! (The examples live here, not on [`ClientOptions`]: structopt prints a
//! struct's doc comment as the program's `--help`.)

use structopt::StructOpt;

/// The guide's clients talk to `localhost:1337`.
pub const DEFAULT_ADDRESS: &str = "localhost:1337";

/// How a client reaches the server: its address, TLS, and how long to wait
/// for the connection. `--help` opens with the client's own job
/// ([`ClientOptions::for_client`]).
#[derive(Debug, StructOpt)]
#[structopt(version = crate::VERSION)]
pub struct ClientOptions {
    /// Server address: host:port (IPv6 hosts in brackets); or several,
    /// comma-separated, to spread calls over them round robin; or any gRPC
    /// target URI (dns:///name:port resolves every address of the name).
    #[structopt(default_value = DEFAULT_ADDRESS)]
    pub address: String,

    /// Seconds to wait for the connection before giving up.
    #[structopt(long, default_value = "3")]
    pub connect_timeout: u64,

    /// PEM CA certificate to trust: connect with TLS.
    #[structopt(long)]
    pub tls_ca: Option<String>,

    /// PEM client certificate, for servers that require one (mutual TLS;
    /// with --tls-key and --tls-ca).
    #[structopt(long, requires_all = &["tls-key", "tls-ca"])]
    pub tls_cert: Option<String>,

    /// PEM private key of --tls-cert.
    #[structopt(long, requires = "tls-cert")]
    pub tls_key: Option<String>,

    /// Name to verify the server's certificate against, instead of the host
    /// in the address.
    #[structopt(long, requires = "tls-ca")]
    pub tls_server_name: Option<String>,
}

impl ClientOptions {
    /// The command line of the running client, whose `--help` opens with
    /// `about`: what that client does, in the guide's terms. Exits with
    /// clap's message on a bad command line, as `from_args` does.
    pub fn for_client(about: &'static str) -> Self {
        let matches = Self::clap().about(about).get_matches();
        Self::from_clap(&matches)
    }

    /// The gRPC target for `address`: a list of host:port pairs becomes an
    /// `ipv4:`/`ipv6:` URI the C core resolves to all of them; anything
    /// else (one host:port, a URI) is used as it is.
    ///
    /// ```
    /// use fibonacci_grpc::client::ClientOptions;
    /// use structopt::StructOpt;
    ///
    /// let target = |address| ClientOptions::from_iter(["client_unary", address]).target();
    /// assert_eq!(target("localhost:1337"), "localhost:1337");
    /// assert_eq!(target("10.0.0.1:1337,10.0.0.2:1337"), "ipv4:10.0.0.1:1337,10.0.0.2:1337");
    /// assert_eq!(target("dns:///fibonacci:1337"), "dns:///fibonacci:1337");
    /// ```
    pub fn target(&self) -> String {
        const SCHEMES: [&str; 5] = ["dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"];
        let addresses: Vec<&str> = self.address.split(',').map(str::trim).collect();
        if addresses.len() < 2
            || SCHEMES
                .iter()
                .any(|scheme| self.address.starts_with(scheme))
        {
            return self.address.clone();
        }
        let scheme = if addresses.iter().all(|a| a.starts_with('[')) {
            "ipv6"
        } else {
            "ipv4"
        };
        format!("{scheme}:{}", addresses.join(","))
    }
}

// Test code only, never compiled into the binaries' paths: an unwrap here
// can only fail the test that runs it.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists_become_one_target() {
        let target = |address: &str| {
            ClientOptions::from_iter_safe(["client", address])
                .unwrap()
                .target()
        };
        assert_eq!(target("localhost:1337"), "localhost:1337");
        assert_eq!(
            target("127.0.0.1:1,127.0.0.1:2"),
            "ipv4:127.0.0.1:1,127.0.0.1:2"
        );
        assert_eq!(target("[::1]:1,[::1]:2"), "ipv6:[::1]:1,[::1]:2");
        assert_eq!(target("dns:///fibonacci:1337"), "dns:///fibonacci:1337");
        assert_eq!(
            target("ipv4:127.0.0.1:1,127.0.0.1:2"),
            "ipv4:127.0.0.1:1,127.0.0.1:2"
        );
    }
}
