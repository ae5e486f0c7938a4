//! The `grpc` probe: the standard gRPC health check (`grpc.health.v1.Health/Check`) over
//! HTTP/2 without TLS, as the kubelet runs it. The request and answer are two tiny protobuf
//! messages (`HealthCheckRequest { string service = 1; }`,
//! `HealthCheckResponse { ServingStatus status = 1; }`), written and read here by hand; the
//! call's `grpc-status` comes in the trailers (or the headers of a trailers-only answer).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::probe::Outcome;

/// `SERVING` in `grpc.health.v1.HealthCheckResponse.ServingStatus`.
const SERVING: u64 = 1;

/// The framed request for `service` (gRPC's 5-byte prefix, then the message).
fn request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        push_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The serving status in a framed answer (0, `UNKNOWN`, when the field is absent).
fn serving_status(framed: &[u8]) -> Option<u64> {
    let message = framed.get(5..)?;
    let mut at = 0;
    let mut status = 0;
    while at < message.len() {
        let (key, used) = read_varint(&message[at..])?;
        at += used;
        match (key >> 3, key & 7) {
            (1, 0) => {
                let (value, used) = read_varint(&message[at..])?;
                status = value;
                at += used;
            }
            (_, 0) => at += read_varint(&message[at..])?.1,
            (_, 2) => {
                let (len, used) = read_varint(&message[at..])?;
                at += used + usize::try_from(len).ok()?;
            }
            _ => return None,
        }
    }
    Some(status)
}

fn status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNRECOGNIZED",
    }
}

/// Runs the health check of `service` at `host:port` within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let target = format!("{host}:{port}");
    let call = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("failed to connect service {target:?}: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| format!("failed to connect service {target:?}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a gRPC probe's connection ended");
            }
        });
        let call = hyper::Request::post(format!("http://{target}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "kube-probe/1.33")
            .body(Full::new(Bytes::from(request(service))))
            .map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(call)
            .await
            .map_err(|e| format!("health rpc failed: {e}"))?;
        let headers = answer.headers().clone();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("health rpc failed: {e}"))?;
        let trailers = body.trailers().cloned().unwrap_or_default();
        let grpc_status = trailers
            .get("grpc-status")
            .or_else(|| headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned();
        if grpc_status != "0" {
            let message = trailers
                .get("grpc-message")
                .or_else(|| headers.get("grpc-message"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(format!(
                "health rpc probe failed: rpc error: code = {grpc_status} desc = {message}"
            ));
        }
        match serving_status(&body.to_bytes()) {
            Some(SERVING) => Ok(()),
            Some(other) => Err(format!(
                "service unhealthy (responded with {:?})",
                status_name(other)
            )),
            None => Err("health rpc probe failed: a malformed answer".to_owned()),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    #[test]
    fn messages_are_encoded_and_read_as_protobuf() {
        assert_eq!(request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(request("db"), vec![0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(SERVING));
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 0x80]), None);
    }

    /// A health server answering `status` for every service, on a free port.
    async fn server(status: u8) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = hyper::service::service_fn(move |_req| async move {
                    let frames = vec![
                        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![
                            0, 0, 0, 0, 2, 0x08, status,
                        ]))),
                        Ok(Frame::trailers({
                            let mut t = hyper::HeaderMap::new();
                            t.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
                            t
                        })),
                    ];
                    let body = StreamBody::new(futures::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .expect("response"),
                    )
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn serving_passes_and_anything_else_fails_with_its_name() {
        let up = server(1).await;
        assert_eq!(
            check("127.0.0.1", up, "", Duration::from_secs(2)).await,
            Ok(())
        );
        let down = server(2).await;
        assert_eq!(
            check("127.0.0.1", down, "db", Duration::from_secs(2)).await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".to_owned())
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let refused = check("127.0.0.1", closed, "", Duration::from_secs(2)).await;
        assert!(refused.is_err_and(|e| e.starts_with("failed to connect service")));
    }
}
