//! Where a notification may be POSTed.
//!
//! A webhook URL is a credential (Slack's carries its token in the path) and the function runs
//! inside the account: a URL that points at the instance metadata service, a VPC address or a
//! redirect to either would turn an alarm into a request the account did not mean to make. So a
//! URL is checked before any request: https, no user info, Slack's own hosts for the Slack channel,
//! the declared hosts (when declared) for the generic webhook, and no literal address outside the
//! public internet. Names are resolved by [`PublicResolver`], which refuses private and reserved
//! addresses at connection time, so a name that resolves (or re-resolves) to one is refused too.
//! Redirects are never followed.
//!
//! No error here names the URL or any part of it: errors reach logs, the failure queue and the
//! notification's own "not known" line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The hosts Slack's incoming webhooks are served from (commercial and GovSlack).
pub const SLACK_HOSTS: [&str; 2] = ["hooks.slack.com", "hooks.slack-gov.com"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Slack,
    Webhook,
}

/// What the generic webhook may reach, and whether loopback stand-ins are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Hosts the generic webhook may be on (a host or any of its subdomains); empty: any public host.
    pub webhook_hosts: Vec<String>,
    /// Plain http to 127.0.0.1 or ::1, for the local stand-ins the tests run. The template never
    /// sets it.
    pub loopback: bool,
}

/// Why a URL is refused. Says what is wrong, never what the URL is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the URL does not parse")]
    Unparsable,
    #[error("the URL is not https")]
    NotHttps,
    #[error("the URL carries a user name or password")]
    UserInfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("a Slack webhook must be on {}", SLACK_HOSTS.join(" or "))]
    NotSlack,
    #[error("the host is not among VOICELAKE_WEBHOOK_ALLOWED_HOSTS")]
    HostNotAllowed,
    #[error("the host is a private, loopback, link-local or reserved address")]
    PrivateAddress,
}

/// The URL to POST to, or why not.
pub fn check(url: &str, channel: Channel, policy: &UrlPolicy) -> Result<Url, Refused> {
    let url = Url::parse(url.trim()).map_err(|_| Refused::Unparsable)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::UserInfo);
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(Refused::NoHost)?;
    // The parser has already turned every IPv4 spelling (`2130706433`, `0x7f.1`) into dotted form.
    let literal: Option<IpAddr> = host.trim_start_matches('[').trim_end_matches(']').parse().ok();
    if policy.loopback && literal.is_some_and(|a| a.is_loopback()) && matches!(url.scheme(), "http" | "https") {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(Refused::NotHttps);
    }
    if literal.is_some_and(|a| !is_public(a)) {
        return Err(Refused::PrivateAddress);
    }
    let name = url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase();
    let within = |allowed: &str| {
        let allowed = allowed.trim().trim_end_matches('.').to_ascii_lowercase();
        !allowed.is_empty() && (name == allowed || name.ends_with(&format!(".{allowed}")))
    };
    match channel {
        Channel::Slack if !SLACK_HOSTS.iter().any(|h| name == *h) => Err(Refused::NotSlack),
        Channel::Webhook if !policy.webhook_hosts.is_empty() && !policy.webhook_hosts.iter().any(|h| within(h)) => {
            Err(Refused::HostNotAllowed)
        }
        _ => Ok(url),
    }
}

/// Whether an address is on the public internet: not private, loopback, link-local, shared
/// (carrier-grade NAT), documentation, benchmarking, multicast, unspecified or reserved, in IPv4,
/// IPv6 or IPv4 inside IPv6.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(a),
        },
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, o2, _] = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || o0 == 0
        || (o0 == 100 && (64..128).contains(&o1))
        || (o0 == 192 && o1 == 0 && o2 == 0)
        || (o0 == 198 && (18..20).contains(&o1))
        || o0 >= 240)
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: reaches IPv4 space of any kind
        || (s[0] == 0x2002) // 6to4: likewise
        || s[..6] == [0; 6]) // IPv4-compatible
}

/// Resolves names through the system resolver, keeping only public addresses (loopback too when
/// the policy allows it). A name with nothing left is an error that names neither it nor its
/// addresses.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    pub loopback: bool,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let loopback = self.loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(ResolveError(format!("the host does not resolve ({})", e.kind()))) })?
                .collect();
            let usable: Vec<SocketAddr> =
                found.iter().copied().filter(|a| is_public(a.ip()) || (loopback && a.ip().is_loopback())).collect();
            if usable.is_empty() {
                let refused: BoxError =
                    Box::new(ResolveError("the host resolves only to private, loopback, link-local or reserved addresses".into()));
                return Err(refused);
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ResolveError(String);

/// The client every notification is POSTed with: no redirects, no proxy from the environment (it
/// would bypass the address check), names resolved by [`PublicResolver`].
pub fn client(timeout: std::time::Duration, policy: &UrlPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(PublicResolver { loopback: policy.loopback })
        .build()
        .expect("an HTTP client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(url: &str) -> Result<Url, Refused> {
        check(url, Channel::Slack, &UrlPolicy::default())
    }

    fn hook(url: &str) -> Result<Url, Refused> {
        check(url, Channel::Webhook, &UrlPolicy::default())
    }

    #[test]
    fn slack_urls_must_be_https_on_slacks_hosts() {
        assert!(slack("https://hooks.slack.com/services/T0/B0/xyz").is_ok());
        assert!(slack(" https://HOOKS.slack.com./services/T0/B0/xyz\n").is_ok());
        assert!(slack("https://hooks.slack-gov.com/services/T0/B0/xyz").is_ok());
        assert_eq!(slack("http://hooks.slack.com/services/T0/B0/xyz"), Err(Refused::NotHttps));
        assert_eq!(slack("https://hooks.slack.com.evil.example/services/x"), Err(Refused::NotSlack));
        assert_eq!(slack("https://example.com/services/T0/B0/xyz"), Err(Refused::NotSlack));
        assert_eq!(slack("https://user:pw@hooks.slack.com/services/x"), Err(Refused::UserInfo));
        assert_eq!(slack("hooks.slack.com/services/x"), Err(Refused::Unparsable));
    }

    #[test]
    fn webhooks_must_be_https_to_a_public_host_and_a_declared_one_when_declared() {
        assert!(hook("https://ops.example.com/hooks/voicelake?token=s3cret").is_ok());
        assert_eq!(hook("http://ops.example.com/hook"), Err(Refused::NotHttps));
        for private in [
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/hook",
            "https://192.168.1.1/hook",
            "https://172.16.0.1/hook",
            "https://100.64.0.1/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://[fd00:ec2::254]/hook",
            "https://[fe80::1]/hook",
            "https://[::ffff:169.254.169.254]/hook",
            "https://0.0.0.0/hook",
            "https://2130706433/hook",
        ] {
            assert_eq!(hook(private), Err(Refused::PrivateAddress), "{private}");
        }
        assert!(hook("https://52.94.76.10/hook").is_ok());
        let declared = UrlPolicy { webhook_hosts: vec!["example.com".into()], loopback: false };
        assert!(check("https://ops.example.com/h", Channel::Webhook, &declared).is_ok());
        assert!(check("https://example.com/h", Channel::Webhook, &declared).is_ok());
        assert_eq!(check("https://notexample.com/h", Channel::Webhook, &declared), Err(Refused::HostNotAllowed));
    }

    #[test]
    fn loopback_stand_ins_only_when_allowed() {
        let local = UrlPolicy { webhook_hosts: vec![], loopback: true };
        assert!(check("http://127.0.0.1:8080/hook", Channel::Slack, &local).is_ok());
        assert_eq!(check("http://localhost:8080/hook", Channel::Webhook, &local), Err(Refused::NotHttps));
        assert_eq!(check("http://10.0.0.1/hook", Channel::Webhook, &local), Err(Refused::NotHttps));
        assert_eq!(hook("http://127.0.0.1:8080/hook"), Err(Refused::NotHttps));
    }

    #[test]
    fn no_refusal_names_the_url() {
        for url in ["http://hooks.slack.com/services/T0/B0/SECRET", "https://SECRET.example/x", "https://u:SECRET@hooks.slack.com/"] {
            let e = slack(url).unwrap_err().to_string();
            assert!(!e.to_lowercase().contains("secret"), "{e}");
        }
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused_at_connection_time() {
        let name: Name = "localhost".parse().unwrap();
        let e = PublicResolver { loopback: false }.resolve(name).await.err().expect("localhost is refused");
        assert!(e.to_string().contains("private, loopback"), "{e}");
        let name: Name = "localhost".parse().unwrap();
        assert!(PublicResolver { loopback: true }.resolve(name).await.is_ok());
    }
}
