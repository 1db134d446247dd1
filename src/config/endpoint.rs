//! Parsing a provider `base_url` into an [`Endpoint`].

use super::model::Endpoint;

/// Parses `http(s)://host[:port][/path][?query]` with [`http::Uri`]. Userinfo and
/// fragments are refused (credentials belong in `api_key`, not in a URL that might be
/// logged).
pub fn parse_base_url(url: &str) -> Result<Endpoint, String> {
    let url = url.trim();
    if url.contains('#') {
        return Err("must not contain a fragment (#)".into());
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("is not a valid URL ({e})"))?;
    let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("must start with http:// or https://".into()),
    };
    let authority = uri.authority().ok_or_else(|| "has no host".to_string())?;
    if authority.as_str().contains('@') {
        return Err("must not contain credentials (user@host); use api_key".into());
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("has no host".into());
    }
    if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!("`{host}` is not an IPv6 address"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':' || b == b'_')
    {
        return Err(format!("host `{host}` has invalid characters"));
    }
    // Without userinfo the authority is the host, then an optional `:port`.
    let port = match authority.as_str().get(authority.host().len()..) {
        None | Some("") => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(rest) => parse_port(rest.strip_prefix(':').unwrap_or(rest))?,
    };
    Ok(Endpoint {
        tls,
        host: host.to_ascii_lowercase(),
        port,
        path_prefix: uri.path().trim_end_matches('/').to_string(),
        query: uri.query().filter(|q| !q.is_empty()).map(str::to_string),
    })
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
            // a host with a colon is not `a:b` on port 80
            "http://a:b:80",
            "http://a:b",
            "https://host:/v1",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad} should be rejected");
        }
    }
}
