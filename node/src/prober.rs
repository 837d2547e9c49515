//! Probes: one task per running container and probe kind (startup, liveness, readiness),
//! with upstream's timing (initialDelaySeconds, periodSeconds, timeoutSeconds, success and
//! failure thresholds). Results land in the kubelet's per-pod state and wake the pod's
//! worker: readiness drives the Ready condition, a failed liveness or startup probe gets
//! the container restarted.

use crate::kubelet::Kubelet;
use crate::podsync::RuntimePod;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, Probe};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Starts the probe tasks that running containers need and do not have yet.
pub(crate) fn ensure(k: &Arc<Kubelet>, pod: &Pod, rt: &RuntimePod) {
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    for c in &rt.containers {
        if c.state != cri::ContainerState::ContainerRunning as i32 {
            continue;
        }
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let Some(sc) = spec.containers.iter().find(|x| x.name == name) else {
            continue;
        };
        for (kind, probe) in [
            (Kind::Startup, &sc.startup_probe),
            (Kind::Liveness, &sc.liveness_probe),
            (Kind::Readiness, &sc.readiness_probe),
        ] {
            let Some(probe) = probe.clone() else { continue };
            let key = format!("{}/{}", c.id, kind.label());
            if k.register_prober(&key) {
                let has_startup = sc.startup_probe.is_some();
                tokio::spawn(run(
                    k.clone(),
                    pod.clone(),
                    c.id.clone(),
                    name.clone(),
                    kind,
                    probe,
                    has_startup,
                    key,
                ));
            }
        }
    }
}

/// Runs one probe once. Ok = success (with output), Err = failure (with the reason).
pub async fn probe_once(
    k: &Kubelet,
    pod: &Pod,
    container_id: &str,
    p: &Probe,
) -> Result<(), String> {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(e) = &p.exec {
        return crate::hooks::exec(
            k.runtime(),
            container_id,
            e.command.as_deref().unwrap_or(&[]),
            timeout,
        )
        .await
        .map(|_| ());
    }
    if let Some(g) = &p.http_get {
        let code = crate::hooks::http_get(pod, g, timeout).await?;
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(t) = &p.tcp_socket {
        let host = t
            .host
            .clone()
            .or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone()))
            .unwrap_or_default();
        return crate::hooks::tcp_connect(
            &host,
            crate::hooks::resolve_port(pod, &t.port)?,
            timeout,
        )
        .await;
    }
    Err("grpc probes are not supported yet".into())
}

#[allow(clippy::too_many_arguments)]
async fn run(
    k: Arc<Kubelet>,
    pod: Pod,
    container_id: String,
    name: String,
    kind: Kind,
    probe: Probe,
    has_startup: bool,
    key: String,
) {
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(Duration::from_secs(
        probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
    ))
    .await;
    let (mut ok_run, mut fail_run) = (0, 0);
    let mut last: Option<bool> = None;
    loop {
        let running = matches!(
            k.runtime().container_status(&container_id).await,
            Ok(s) if s.state == cri::ContainerState::ContainerRunning as i32
        );
        if !running {
            break;
        }
        let started = k.container_started(&pod, &name);
        if kind == Kind::Startup && started {
            break;
        }
        if kind != Kind::Startup && has_startup && !started {
            tokio::time::sleep(period).await;
            continue;
        }
        // The pod's IP may have arrived since the task started.
        let pod_now = k.pod_snapshot(&pod).unwrap_or_else(|| pod.clone());
        match probe_once(&k, &pod_now, &container_id, &probe).await {
            Ok(()) => {
                ok_run += 1;
                fail_run = 0;
            }
            Err(msg) => {
                fail_run += 1;
                ok_run = 0;
                k.probe_event(
                    &pod,
                    &name,
                    &format!("{} probe failed: {msg}", kind.label()),
                );
            }
        }
        let verdict = if ok_run >= success_threshold {
            Some(true)
        } else if fail_run >= failure_threshold {
            Some(false)
        } else {
            None
        };
        if let Some(v) = verdict {
            if last != Some(v) {
                last = Some(v);
                k.probe_result(&pod, &name, kind, v);
                if !v && kind != Kind::Readiness {
                    break;
                }
            }
        }
        tokio::time::sleep(period).await;
    }
    if kind == Kind::Readiness {
        k.probe_result(&pod, &name, kind, false);
    }
    k.unregister_prober(&key);
}
