//! A throwaway certificate authority for TLS tests: one CA and one leaf certificate it
//! signed for a host name or IP address.

/// A CA and a leaf certificate for one host, in the forms the tests need.
pub struct TestCert {
    /// The CA certificate (PEM): what a client must trust.
    pub ca_pem: String,
    /// The leaf certificate (PEM and DER) and its private key (PEM and PKCS#8 DER).
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

/// A fresh CA named `ca_name` and a leaf certificate it signed for `host`.
pub fn issue(ca_name: &str, host: &str) -> TestCert {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    TestCert {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        cert_der: leaf.der().to_vec(),
        key_pem: leaf_key.serialize_pem(),
        key_der: leaf_key.serialize_der(),
    }
}
