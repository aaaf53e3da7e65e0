//! Kubernetes executor (kube + k8s-openapi; rustls with aws-lc-rs).
//!
//! Operations, each what `kubectl` does for it:
//! - `rollout-restart`: strategic-merge patch of the pod template's
//!   `kubectl.kubernetes.io/restartedAt` annotation (RFC 3339, now);
//! - `scale`: merge patch of the deployment's `scale` subresource;
//! - `rollout-undo`: the ReplicaSets the deployment owns are listed, the one
//!   with the highest `deployment.kubernetes.io/revision` below the
//!   deployment's own is the previous one; its pod template (without the
//!   `pod-template-hash` label) replaces the deployment's (JSON patch);
//! - `delete-pod`: DELETE of the pod (its controller replaces it);
//! - `cordon`: strategic-merge patch `spec.unschedulable: true` of a node.
//!
//! After a deployment op the executor waits for the rollout, reading the
//! deployment's status as `kubectl rollout status` does ([`rollout_status`]):
//! the new generation observed, every replica updated and available, no
//! old replica left, and `Progressing` not `ProgressDeadlineExceeded`. That
//! status is the action's verify signal and goes into its output (and the
//! audit record). The whole call is bounded by the action's timeout and
//! stops on cancel.
//!
//! The client is configured from the action's `kubeconfig`/`context`, or
//! else `KUBECONFIG`, `~/.kube/config`, or the in-cluster service account
//! (`Config::infer`). Tested against a recorded API conversation replayed by
//! a loopback HTTP server (`tests/kubernetes.rs`); see docs/kubernetes.md.
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use medic_config::{ActionExec, KubeOp};
use medic_core::ActionKind;
use serde_json::json;

use crate::executor::{CancelToken, ExecError, ExecOutput, ExecRequest, ExecResult, Executor};
use crate::supervisor::BoxFuture;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The revision annotation the deployment controller keeps on deployments
/// and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the deployment controller adds to each ReplicaSet's template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Runs `kubernetes:` actions.
#[derive(Clone, Debug)]
pub struct KubernetesExecutor {
    /// How often the deployment is read while waiting for a rollout.
    pub poll: Duration,
}

impl Default for KubernetesExecutor {
    fn default() -> Self {
        KubernetesExecutor {
            poll: Duration::from_secs(2),
        }
    }
}

/// Where a rollout stands, as `kubectl rollout status` judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStatus {
    Done(String),
    Waiting(String),
    /// `Progressing` says `ProgressDeadlineExceeded`.
    Failed(String),
}

fn condition(d: &Deployment, kind: &str) -> Option<(String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

/// One line: generation, replicas and conditions of a deployment.
pub fn describe(d: &Deployment) -> String {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let ns = d.metadata.namespace.as_deref().unwrap_or("?");
    let st = d.status.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let cond = |k: &str| match condition(d, k) {
        Some((s, r)) if r.is_empty() => format!("{k}={s}"),
        Some((s, r)) => format!("{k}={s} ({r})"),
        None => format!("{k}=?"),
    };
    format!(
        "deployment {ns}/{name}: generation {} observed {}, updated {}/{want}, available {}/{want}, replicas {}, {}, {}",
        d.metadata.generation.unwrap_or(0),
        st.observed_generation.unwrap_or(0),
        st.updated_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
        st.replicas.unwrap_or(0),
        cond("Available"),
        cond("Progressing"),
    )
}

/// `kubectl rollout status` for one read of the deployment.
pub fn rollout_status(d: &Deployment) -> RolloutStatus {
    let line = describe(d);
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return RolloutStatus::Waiting(format!("{line}: spec update not observed yet"));
    }
    if let Some((_, reason)) = condition(d, "Progressing") {
        if reason == "ProgressDeadlineExceeded" {
            return RolloutStatus::Failed(format!("{line}: progress deadline exceeded"));
        }
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    if updated < want {
        return RolloutStatus::Waiting(format!("{line}: {updated} of {want} updated"));
    }
    if st.replicas.unwrap_or(0) > updated {
        return RolloutStatus::Waiting(format!(
            "{line}: {} old replicas pending termination",
            st.replicas.unwrap_or(0) - updated
        ));
    }
    if st.available_replicas.unwrap_or(0) < updated {
        return RolloutStatus::Waiting(format!(
            "{line}: {} of {updated} updated replicas available",
            st.available_replicas.unwrap_or(0)
        ));
    }
    RolloutStatus::Done(line)
}

fn api_err(what: &str, e: kube::Error) -> ExecError {
    match e {
        kube::Error::Api(r) => ExecError::Http(format!(
            "kubernetes {what}: {} {} ({})",
            r.code, r.reason, r.message
        )),
        other => ExecError::Http(format!("kubernetes {what}: {other}")),
    }
}

/// A client from the action's kubeconfig/context, or inferred.
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<Client, ExecError> {
    let opts = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| ExecError::Other(format!("kubeconfig {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| ExecError::Other(format!("kubeconfig {}: {e}", path.display())))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&opts)
            .await
            .map_err(|e| ExecError::Other(format!("kubeconfig: {e}")))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| ExecError::Other(format!("kubernetes config: {e}")))?,
    };
    Client::try_from(config).map_err(|e| ExecError::Other(format!("kubernetes client: {e}")))
}

/// RFC 3339 UTC, seconds, as kubectl writes `restartedAt`.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&fmt)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<i64> {
    meta.annotations.as_ref()?.get(REVISION)?.parse().ok()
}

/// The pod template of the ReplicaSet before the deployment's current
/// revision, among those it owns.
fn previous_template(
    d: &Deployment,
    sets: &[ReplicaSet],
) -> Result<(i64, serde_json::Value), ExecError> {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let uid = d.metadata.uid.as_deref();
    let current = revision(&d.metadata).ok_or_else(|| {
        ExecError::Other(format!("deployment {name} has no {REVISION} annotation"))
    })?;
    let prev = sets
        .iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|o| o.kind == "Deployment" && Some(o.uid.as_str()) == uid)
            })
        })
        .filter_map(|rs| revision(&rs.metadata).map(|r| (r, rs)))
        .filter(|(r, _)| *r < current)
        .max_by_key(|(r, _)| *r);
    let Some((rev, rs)) = prev else {
        return Err(ExecError::Other(format!(
            "deployment {name}: no revision before {current} to roll back to"
        )));
    };
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| ExecError::Other(format!("revision {rev} of {name} has no template")))?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let value = serde_json::to_value(&template)
        .map_err(|e| ExecError::Other(format!("template of revision {rev}: {e}")))?;
    Ok((rev, value))
}

impl KubernetesExecutor {
    async fn wait_rollout(&self, api: &Api<Deployment>, name: &str) -> ExecResult {
        loop {
            let d = api.get(name).await.map_err(|e| api_err("get", e))?;
            match rollout_status(&d) {
                RolloutStatus::Done(line) => return Ok(ExecOutput { detail: line }),
                RolloutStatus::Failed(line) => return Err(ExecError::Other(line)),
                RolloutStatus::Waiting(_) => tokio::time::sleep(self.poll).await,
            }
        }
    }

    async fn run(&self, op: KubeOp, namespace: &str, target: &str, client: Client) -> ExecResult {
        let pp = PatchParams::default();
        match op {
            KubeOp::RolloutRestart => {
                let api: Api<Deployment> = Api::namespaced(client, namespace);
                let at = now_rfc3339();
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}});
                api.patch(target, &pp, &Patch::Strategic(patch))
                    .await
                    .map_err(|e| api_err("rollout restart", e))?;
                let done = self.wait_rollout(&api, target).await?;
                Ok(ExecOutput {
                    detail: format!("rollout restart (restartedAt {at}): {}", done.detail),
                })
            }
            KubeOp::Scale { replicas } => {
                let api: Api<Deployment> = Api::namespaced(client, namespace);
                let patch = json!({"spec": {"replicas": replicas}});
                api.patch_scale(target, &pp, &Patch::Merge(patch))
                    .await
                    .map_err(|e| api_err("scale", e))?;
                let done = self.wait_rollout(&api, target).await?;
                Ok(ExecOutput {
                    detail: format!("scaled to {replicas}: {}", done.detail),
                })
            }
            KubeOp::RolloutUndo => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                let d = api.get(target).await.map_err(|e| api_err("get", e))?;
                let selector = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.match_labels.as_ref())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
                let list = sets
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| api_err("list replicasets", e))?;
                let (rev, template) = previous_template(&d, &list.items)?;
                let body = serde_json::to_vec(&json!([
                    {"op": "replace", "path": "/spec/template", "value": template}
                ]))
                .map_err(|e| ExecError::Other(format!("rollback patch: {e}")))?;
                let req = http::Request::builder()
                    .method("PATCH")
                    .uri(format!(
                        "/apis/apps/v1/namespaces/{namespace}/deployments/{target}"
                    ))
                    .header("content-type", "application/json-patch+json")
                    .header("accept", "application/json")
                    .body(body)
                    .map_err(|e| ExecError::Other(format!("rollback request: {e}")))?;
                client
                    .request::<Deployment>(req)
                    .await
                    .map_err(|e| api_err("rollout undo", e))?;
                let done = self.wait_rollout(&api, target).await?;
                Ok(ExecOutput {
                    detail: format!("rolled back to revision {rev}: {}", done.detail),
                })
            }
            KubeOp::DeletePod => {
                let api: Api<Pod> = Api::namespaced(client, namespace);
                let gone = api
                    .delete(target, &DeleteParams::default())
                    .await
                    .map_err(|e| api_err("delete pod", e))?;
                let detail = match gone.left() {
                    Some(p) => format!(
                        "pod {namespace}/{target} deleting (uid {}, deletionTimestamp {})",
                        p.metadata.uid.unwrap_or_default(),
                        p.metadata
                            .deletion_timestamp
                            .and_then(|t| serde_json::to_value(t).ok())
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_else(|| "-".into())
                    ),
                    None => format!("pod {namespace}/{target} deleted"),
                };
                Ok(ExecOutput { detail })
            }
            KubeOp::Cordon => {
                let api: Api<Node> = Api::all(client);
                let patch = json!({"spec": {"unschedulable": true}});
                let n = api
                    .patch(target, &pp, &Patch::Strategic(patch))
                    .await
                    .map_err(|e| api_err("cordon", e))?;
                let unschedulable = n.spec.and_then(|s| s.unschedulable).unwrap_or(false);
                if !unschedulable {
                    return Err(ExecError::Other(format!(
                        "node {target}: still schedulable after the patch"
                    )));
                }
                Ok(ExecOutput {
                    detail: format!("node {target} cordoned (unschedulable)"),
                })
            }
        }
    }
}

impl Executor for KubernetesExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Kubernetes
    }

    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        let this = self.clone();
        Box::pin(async move {
            let ActionExec::Kubernetes {
                op,
                namespace,
                target,
                kubeconfig,
                context,
                timeout,
            } = req.spec
            else {
                return Err(ExecError::Other("not a kubernetes action".into()));
            };
            let work = async {
                let client = client(kubeconfig.as_deref(), context.as_deref()).await?;
                this.run(op, &namespace, &target, client).await
            };
            tokio::select! {
                r = tokio::time::timeout(timeout, work) => r.unwrap_or_else(|_| {
                    Err(ExecError::Timeout(format!(
                        "kubernetes {} {target}: not done within {}ms",
                        op.as_str(),
                        timeout.as_millis()
                    )))
                }),
                _ = cancel.cancelled() => Err(ExecError::Cancelled(format!(
                    "kubernetes {} {target}: cancelled", op.as_str()
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dep(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rollout_status_follows_kubectl() {
        let base = |gen: i64, obs: i64, upd: i32, rep: i32, avail: i32, reason: &str| {
            dep(json!({
                "metadata": {"name": "web", "namespace": "shop", "generation": gen},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
                "status": {"observedGeneration": obs, "updatedReplicas": upd, "replicas": rep,
                    "availableReplicas": avail,
                    "conditions": [{"type": "Progressing", "status": "True", "reason": reason}]}
            }))
        };
        assert!(
            matches!(rollout_status(&base(2, 1, 3, 3, 3, "NewReplicaSetAvailable")), RolloutStatus::Waiting(s) if s.contains("not observed"))
        );
        assert!(
            matches!(rollout_status(&base(2, 2, 1, 4, 3, "ReplicaSetUpdated")), RolloutStatus::Waiting(s) if s.contains("1 of 3 updated"))
        );
        assert!(
            matches!(rollout_status(&base(2, 2, 3, 4, 3, "ReplicaSetUpdated")), RolloutStatus::Waiting(s) if s.contains("1 old replicas"))
        );
        assert!(
            matches!(rollout_status(&base(2, 2, 3, 3, 2, "ReplicaSetUpdated")), RolloutStatus::Waiting(s) if s.contains("2 of 3 updated replicas available"))
        );
        assert!(matches!(
            rollout_status(&base(2, 2, 1, 4, 3, "ProgressDeadlineExceeded")),
            RolloutStatus::Failed(_)
        ));
        let done = rollout_status(&base(2, 2, 3, 3, 3, "NewReplicaSetAvailable"));
        assert_eq!(done, RolloutStatus::Done("deployment shop/web: generation 2 observed 2, updated 3/3, available 3/3, replicas 3, Available=?, Progressing=True (NewReplicaSetAvailable)".into()));
    }
}
