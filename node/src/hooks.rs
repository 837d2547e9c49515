//! Running handlers inside or against a container: exec (CRI ExecSync), HTTP GET and TCP
//! connect. Used by lifecycle hooks (postStart, preStop) and by probes.

use crate::cri::Runtime;
use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a handler failed (the text goes into events, as upstream's messages do).
pub type HandlerError = String;

pub async fn exec(
    runtime: &dyn Runtime,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<String, HandlerError> {
    let r = runtime
        .exec_sync(container_id, cmd.to_vec(), timeout.as_secs().max(1) as i64)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&r.stderr));
    if r.exit_code != 0 {
        return Err(format!(
            "command '{}' exited with {}: {}",
            cmd.join(" "),
            r.exit_code,
            out
        ));
    }
    Ok(out)
}

/// Resolves a named port against the container ports of the pod.
pub fn resolve_port(pod: &Pod, port: &IntOrString) -> Result<u16, HandlerError> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            pod.spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name:?}"))
        }
    }
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// An HTTP GET as the kubelet's prober makes it; Ok(status) for any answer.
pub async fn http_get(
    pod: &Pod,
    a: &HTTPGetAction,
    timeout: Duration,
) -> Result<u16, HandlerError> {
    let host = a.host.clone().unwrap_or_else(|| pod_ip(pod));
    if host.is_empty() {
        return Err("pod has no ip yet".into());
    }
    if a.scheme.as_deref() == Some("HTTPS") {
        return Err("https probes are not supported yet".into());
    }
    let port = resolve_port(pod, &a.port)?;
    let path = a.path.clone().unwrap_or_else(|| "/".into());
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
        for h in a.http_headers.iter().flatten() {
            req.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256];
        let mut n = 0;
        while n < 12 {
            let r = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
            if r == 0 {
                break;
            }
            n += r;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("Get \"http://{host}:{port}{path}\": malformed response"))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("Get \"http://{host}:{port}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"))?
}

pub async fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<(), HandlerError> {
    tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("dial tcp {host}:{port}: i/o timeout"))?
        .map(|_| ())
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
}

/// Runs a lifecycle handler (postStart or preStop).
pub async fn run_handler(
    runtime: &dyn Runtime,
    container_id: &str,
    pod: &Pod,
    h: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), HandlerError> {
    if let Some(e) = &h.exec {
        return exec(
            runtime,
            container_id,
            e.command.as_deref().unwrap_or(&[]),
            timeout,
        )
        .await
        .map(|_| ());
    }
    if let Some(g) = &h.http_get {
        let code = http_get(pod, g, timeout).await?;
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP lifecycle hook returned status {code}"))
        };
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    if let Some(t) = &h.tcp_socket {
        let host = t.host.clone().unwrap_or_else(|| pod_ip(pod));
        return tcp_connect(&host, resolve_port(pod, &t.port)?, timeout).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_resolve() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .unwrap();
        assert_eq!(
            resolve_port(&pod, &IntOrString::String("http".into())),
            Ok(8080)
        );
        assert_eq!(resolve_port(&pod, &IntOrString::Int(80)), Ok(80));
        assert!(resolve_port(&pod, &IntOrString::String("nope".into())).is_err());
    }

    #[tokio::test]
    async fn http_get_reads_the_status() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 512];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .await
                .unwrap();
        });
        let pod = Pod::default();
        let a = HTTPGetAction {
            host: Some("127.0.0.1".into()),
            port: IntOrString::Int(port as i32),
            path: Some("/healthz".into()),
            ..Default::default()
        };
        assert_eq!(http_get(&pod, &a, Duration::from_secs(2)).await, Ok(503));
    }
}
