//! Helpers shared by the command tests.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The `/metrics` body served beside a kite's `http://HOST:PORT/kite` URL (plain HTTP/1.1
/// over a socket: what a Prometheus scrape sends). Panics unless the answer is 200.
pub async fn scrape_metrics(kite_url: &str) -> String {
    let addr = kite_url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/kite"))
        .unwrap_or_else(|| panic!("unexpected kite URL {kite_url}"));
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .expect("scraping /metrics timed out")
        .expect("scraping /metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}
