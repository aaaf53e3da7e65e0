//! `store:`: where medic keeps its audit chain and state when it is not the
//! default SQLite file (`database:`). Today: a Postgres database shared by
//! several medic instances (`store: { url: postgres://… }`).
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Spanned<String>,
}

/// Checks a Postgres connection URL:
/// `postgres[ql]://[user[:password]@]host[:port][/database][?params]`.
/// The password never appears in the message.
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        return Err(if scheme.is_empty() {
            "store.url must be a URL such as postgres://medic@db.example:5432/medic".into()
        } else {
            format!("store.url scheme `{scheme}` is not supported: use postgres:// (SQLite is `database: PATH`)")
        });
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => return Err("store.url: unclosed `[` in the host".into()),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("store.url has no host (postgres://user@HOST:port/database)".into());
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(format!(
                    "store.url port `{p}` is not a port number (1-65535)"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_postgres_url;

    #[test]
    fn postgres_urls() {
        for ok in [
            "postgres://db/medic",
            "postgresql://medic:s3cret@db.example:5432/medic?sslmode=require",
            "postgres://medic@127.0.0.1:6543",
            "postgres://[::1]:5432/medic",
        ] {
            assert_eq!(check_postgres_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("mysql://db/medic", "scheme `mysql`"),
            ("db.example/medic", "must be a URL"),
            ("postgres:///medic", "no host"),
            ("postgres://u:pw@:5432/medic", "no host"),
            ("postgres://db:99999/medic", "port `99999`"),
            ("postgres://db:x/medic", "port `x`"),
        ] {
            let e = check_postgres_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
