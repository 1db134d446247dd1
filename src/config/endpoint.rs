//! Parsing a provider `base_url` into an [`Endpoint`].

use super::model::Endpoint;

/// Parses `http(s)://host[:port][/path][?query]`. Userinfo and fragments are refused
/// (credentials belong in `api_key`, not in a URL that might be logged).
pub fn parse_base_url(url: &str) -> Result<Endpoint, String> {
    let url = url.trim();
    let (tls, rest) = if let Some(r) = strip_prefix_ci(url, "https://") {
        (true, r)
    } else if let Some(r) = strip_prefix_ci(url, "http://") {
        (false, r)
    } else {
        return Err("must start with http:// or https://".into());
    };
    if rest.contains('#') {
        return Err("must not contain a fragment (#)".into());
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, (!q.is_empty()).then(|| q.to_string())),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    if authority.contains('@') {
        return Err("must not contain credentials (user@host); use api_key".into());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| "unterminated IPv6 address".to_string())?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => default_port,
            None => return Err("unexpected characters after IPv6 address".into()),
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{h}` is not an IPv6 address"));
        }
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), parse_port(p)?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':' || b == b'_')
    {
        return Err(format!("host `{host}` has invalid characters"));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("path has whitespace or control characters".into());
    }
    Ok(Endpoint {
        tls,
        host: host.to_ascii_lowercase(),
        port,
        path_prefix: path.trim_end_matches('/').to_string(),
        query,
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port `{p}` is not a number from 1 to 65535")),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let e = parse_base_url("https://api.openai.com/v1").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path_prefix.as_str()),
            (true, "api.openai.com", 443, "/v1")
        );
        let e = parse_base_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!((e.tls, e.port, e.path_prefix.as_str()), (false, 8080, ""));
        let e =
            parse_base_url("HTTPS://X.openai.azure.com/openai/v1?api-version=2024-02-01").unwrap();
        assert_eq!(e.host, "x.openai.azure.com");
        assert_eq!(e.query.as_deref(), Some("api-version=2024-02-01"));
        let e = parse_base_url("http://[::1]:9000/v1").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.host_header(), "[::1]:9000");
    }

    #[test]
    fn host_header_omits_default_port() {
        assert_eq!(
            parse_base_url("https://a.b/v1").unwrap().host_header(),
            "a.b"
        );
        assert_eq!(
            parse_base_url("http://a.b:81").unwrap().host_header(),
            "a.b:81"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "ftp://x",
            "api.openai.com/v1",
            "https://",
            "https://:443/v1",
            "https://u:p@host/v1",
            "https://host:0",
            "https://host:99999",
            "https://ho st/v1",
            "https://host/v1#frag",
            "http://[::1/v1",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad} should be rejected");
        }
    }
}
