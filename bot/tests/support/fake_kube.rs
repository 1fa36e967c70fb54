//! A fake Kubernetes API server on loopback, for the kubernetes deploy backend: Deployments in
//! `apps/v1` as the real API server shapes them (serialized from `k8s-openapi` types), with
//! GET, LIST (field selector), strategic-merge PATCH and `?watch=true` streams of
//! newline-delimited watch events replayed from a `resourceVersion`. Bearer-token auth
//! (401), and scripted faults answered with the API server's `Status` objects (403 Forbidden
//! with RBAC details, 404, 409 Conflict, 500). The test drives rollouts with
//! [`FakeKube::update`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, watch};

/// The token the fake accepts (`Authorization: Bearer ...`).
pub const TOKEN: &str = "opsbot-test-token";

/// One scripted failure: the next `times` requests of `verb` (get, list, watch, patch) are
/// answered with `code`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub verb: &'static str,
    pub code: u16,
    pub times: u32,
}

#[derive(Debug, Default)]
struct Cluster {
    deployments: BTreeMap<(String, String), Deployment>,
    resource_version: u64,
    /// (resourceVersion, namespace, name, watch event), for replay.
    history: Vec<(u64, String, String, Value)>,
    faults: Vec<Fault>,
    /// Content type and body of every PATCH that got past auth and faults.
    patches: Vec<(String, Value)>,
    /// Requests per verb, refused ones included.
    requests: BTreeMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Shared {
    cluster: Arc<Mutex<Cluster>>,
    events: broadcast::Sender<(u64, String, String, Value)>,
    patched: Arc<Notify>,
    watches: Arc<watch::Sender<usize>>,
}

#[derive(Debug)]
pub struct FakeKube {
    pub url: String,
    shared: Shared,
}

impl FakeKube {
    pub async fn start() -> FakeKube {
        let shared = Shared {
            cluster: Arc::default(),
            events: broadcast::channel(1024).0,
            patched: Arc::default(),
            watches: Arc::new(watch::channel(0).0),
        };
        let app = Router::new()
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments",
                get(list_or_watch),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                get(get_one).patch(patch_one),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeKube { url, shared }
    }

    /// A kubeconfig with context `fake` (namespace `shop`, the right token) and `wrong-token`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\nusers:\n- name: opsbot\n  user:\n    token: {TOKEN}\n- name: stranger\n  user:\n    token: not-the-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: opsbot\n    namespace: shop\n- name: wrong-token\n  context:\n    cluster: fake\n    user: stranger\n    namespace: shop\ncurrent-context: fake\n",
            url = self.url
        )
    }

    /// Adds a Deployment (an ADDED event).
    pub fn insert(&self, deployment: Deployment) {
        let ns = deployment.metadata.namespace.clone().expect("namespace");
        let name = deployment.metadata.name.clone().expect("name");
        let mut cluster = self.shared.cluster.lock().expect("lock");
        cluster
            .deployments
            .insert((ns.clone(), name.clone()), deployment);
        record(&self.shared, &mut cluster, &ns, &name, "ADDED");
    }

    /// Changes a Deployment as the controller would (a MODIFIED event).
    pub fn update(&self, ns: &str, name: &str, change: impl FnOnce(&mut Deployment)) {
        let mut cluster = self.shared.cluster.lock().expect("lock");
        let d = cluster
            .deployments
            .get_mut(&(ns.to_owned(), name.to_owned()))
            .expect("deployment exists");
        change(d);
        record(&self.shared, &mut cluster, ns, name, "MODIFIED");
    }

    /// The controller's view after a step: observed the latest generation, with these counts.
    pub fn step(&self, ns: &str, name: &str, total: i32, updated: i32, available: i32) {
        self.update(ns, name, |d| {
            let status = d.status.get_or_insert_with(Default::default);
            status.observed_generation = d.metadata.generation;
            status.replicas = Some(total);
            status.updated_replicas = Some(updated);
            status.ready_replicas = Some(available);
            status.available_replicas = Some(available);
        });
    }

    pub fn get(&self, ns: &str, name: &str) -> Deployment {
        self.shared.cluster.lock().expect("lock").deployments[&(ns.to_owned(), name.to_owned())]
            .clone()
    }

    pub fn fail(&self, fault: Fault) {
        self.shared.cluster.lock().expect("lock").faults.push(fault);
    }

    /// How many requests of `verb` arrived, refused ones included.
    pub fn requests(&self, verb: &str) -> usize {
        let cluster = self.shared.cluster.lock().expect("lock");
        cluster.requests.get(verb).copied().unwrap_or(0)
    }

    pub fn patches(&self) -> Vec<(String, Value)> {
        self.shared.cluster.lock().expect("lock").patches.clone()
    }

    /// Waits for the next PATCH that got through.
    pub async fn patched(&self) {
        self.shared.patched.notified().await;
    }

    /// Waits until more than `seen` watches have been started; returns how many have.
    pub async fn watch_started(&self, seen: usize) -> usize {
        let mut rx = self.shared.watches.subscribe();
        *rx.wait_for(|n| *n > seen).await.expect("watch counter")
    }

    pub fn watches(&self) -> usize {
        *self.shared.watches.borrow()
    }
}

/// A Deployment fully rolled out at generation 1: `replicas` pods of `image`.
pub fn deployment(ns: &str, name: &str, container: &str, image: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            generation: Some(1),
            uid: Some(format!("uid-{ns}-{name}")),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![
                        Container {
                            name: container.to_owned(),
                            image: Some(image.to_owned()),
                            ..Default::default()
                        },
                        Container {
                            name: "log-shipper".to_owned(),
                            image: Some("fluent/fluent-bit:3.1".to_owned()),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
            },
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(replicas),
            available_replicas: Some(replicas),
            conditions: Some(vec![
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                ),
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{name}-1\" has successfully progressed."),
                ),
            ]),
            ..Default::default()
        }),
    }
}

pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..Default::default()
    }
}

/// Stamps a new resourceVersion on the Deployment and publishes a watch event of it.
fn record(shared: &Shared, cluster: &mut Cluster, ns: &str, name: &str, kind: &str) {
    cluster.resource_version += 1;
    let rv = cluster.resource_version;
    let key = (ns.to_owned(), name.to_owned());
    let d = cluster.deployments.get_mut(&key).expect("deployment");
    d.metadata.resource_version = Some(rv.to_string());
    let event = json!({ "type": kind, "object": d });
    cluster
        .history
        .push((rv, ns.to_owned(), name.to_owned(), event.clone()));
    let _ = shared
        .events
        .send((rv, ns.to_owned(), name.to_owned(), event));
}

/// The API server's `Status` for a failure, as it sends them.
fn status(code: u16, verb: &str, ns: &str, name: &str) -> Response {
    let (reason, message) = match code {
        401 => ("Unauthorized", "Unauthorized".to_owned()),
        403 => (
            "Forbidden",
            format!(
                "deployments.apps \"{name}\" is forbidden: User \"system:serviceaccount:ops:opsbot\" cannot {verb} resource \"deployments\" in API group \"apps\" in the namespace \"{ns}\""
            ),
        ),
        404 => ("NotFound", format!("deployments.apps \"{name}\" not found")),
        409 => (
            "Conflict",
            format!(
                "Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        ),
        _ => (
            "InternalError",
            "Internal error occurred: etcdserver: request timed out".to_owned(),
        ),
    };
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if code != 401 {
        body["details"] = json!({ "name": name, "group": "apps", "kind": "deployments" });
    }
    let code = StatusCode::from_u16(code).expect("status code");
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Authentication, then a scripted fault for `verb`, if any.
fn refused(
    shared: &Shared,
    headers: &HeaderMap,
    verb: &str,
    ns: &str,
    name: &str,
) -> Option<Response> {
    *shared
        .cluster
        .lock()
        .expect("lock")
        .requests
        .entry(verb.to_owned())
        .or_default() += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {TOKEN}")) {
        return Some(status(401, verb, ns, name));
    }
    let mut cluster = shared.cluster.lock().expect("lock");
    let fault = cluster
        .faults
        .iter_mut()
        .find(|f| f.verb == verb && f.times > 0)?;
    fault.times -= 1;
    let code = fault.code;
    Some(status(code, verb, ns, name))
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn get_one(
    State(shared): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&shared, &headers, "get", &ns, &name) {
        return refusal;
    }
    let cluster = shared.cluster.lock().expect("lock");
    match cluster.deployments.get(&(ns.clone(), name.clone())) {
        Some(d) => json_response(json!(d)),
        None => status(404, "get", &ns, &name),
    }
}

/// The name a `fieldSelector=metadata.name=NAME` selects.
fn selected_name(query: &BTreeMap<String, String>) -> Option<String> {
    query
        .get("fieldSelector")
        .and_then(|s| s.strip_prefix("metadata.name="))
        .map(str::to_owned)
}

async fn list_or_watch(
    State(shared): State<Shared>,
    Path(ns): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let name = selected_name(&query);
    let shown = name.clone().unwrap_or_default();
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = if watching { "watch" } else { "list" };
    if let Some(refusal) = refused(&shared, &headers, verb, &ns, &shown) {
        return refusal;
    }
    let selects =
        move |n: &str, d_ns: &str| d_ns == ns && name.as_deref().is_none_or(|want| want == n);
    if !watching {
        let cluster = shared.cluster.lock().expect("lock");
        let items: Vec<&Deployment> = cluster
            .deployments
            .iter()
            .filter(|((d_ns, n), _)| selects(n, d_ns))
            .map(|(_, d)| d)
            .collect();
        return json_response(json!({
            "kind": "DeploymentList",
            "apiVersion": "apps/v1",
            "metadata": { "resourceVersion": cluster.resource_version.to_string() },
            "items": items,
        }));
    }
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Subscribe before reading the history, so that nothing falls between the two.
    let live = shared.events.subscribe();
    let replay: Vec<Value> = {
        let cluster = shared.cluster.lock().expect("lock");
        cluster
            .history
            .iter()
            .filter(|(rv, d_ns, n, _)| *rv > since && selects(n, d_ns))
            .map(|(_, _, _, e)| e.clone())
            .collect()
    };
    let last_replayed = shared.cluster.lock().expect("lock").resource_version;
    shared.watches.send_modify(|n| *n += 1);
    let state = (replay.into_iter(), live, selects, last_replayed.max(since));
    let stream =
        futures_util::stream::unfold(state, |(mut replay, mut live, selects, seen)| async move {
            if let Some(event) = replay.next() {
                let line = Bytes::from(format!("{event}\n"));
                return Some((
                    Ok::<_, std::convert::Infallible>(line),
                    (replay, live, selects, seen),
                ));
            }
            loop {
                let (rv, d_ns, n, event) = live.recv().await.ok()?;
                if rv > seen && selects(&n, &d_ns) {
                    let line = Bytes::from(format!("{event}\n"));
                    return Some((Ok(line), (replay, live, selects, seen)));
                }
            }
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn patch_one(
    State(shared): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refused(&shared, &headers, "patch", &ns, &name) {
        return refusal;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let mut cluster = shared.cluster.lock().expect("lock");
    cluster.patches.push((content_type.clone(), patch.clone()));
    if content_type != "application/strategic-merge-patch+json" {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a strategic merge patch",
        )
            .into_response();
    }
    let key = (ns.clone(), name.clone());
    let Some(d) = cluster.deployments.get_mut(&key) else {
        return status(404, "patch", &ns, &name);
    };
    strategic_merge(d, &patch);
    record(&shared, &mut cluster, &ns, &name, "MODIFIED");
    let answer = json!(cluster.deployments[&key]);
    drop(cluster);
    shared.patched.notify_one();
    json_response(answer)
}

/// The strategic merge the API server does for the keys opsbot patches: annotations merged,
/// `spec.replicas`/`spec.paused` replaced, containers merged by `name`. A change of the pod
/// template bumps `metadata.generation`.
fn strategic_merge(d: &mut Deployment, patch: &Value) {
    if let Some(annotations) = patch["metadata"]["annotations"].as_object() {
        let mine = d.metadata.annotations.get_or_insert_with(Default::default);
        for (k, v) in annotations {
            mine.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
    }
    let spec = d.spec.get_or_insert_with(Default::default);
    let before = serde_json::to_value(&spec.template).expect("template");
    let mut spec_changed = false;
    if let Some(replicas) = patch["spec"]["replicas"].as_i64() {
        spec.replicas = Some(replicas as i32);
        spec_changed = true;
    }
    if let Some(paused) = patch["spec"]["paused"].as_bool() {
        spec.paused = Some(paused);
        spec_changed = true;
    }
    if let Some(containers) = patch["spec"]["template"]["spec"]["containers"].as_array() {
        let pod = spec.template.spec.get_or_insert_with(Default::default);
        for c in containers {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().map(str::to_owned);
            match pod.containers.iter_mut().find(|mine| mine.name == name) {
                Some(mine) => {
                    if image.is_some() {
                        mine.image = image;
                    }
                }
                None => pod.containers.push(Container {
                    name: name.to_owned(),
                    image,
                    ..Default::default()
                }),
            }
        }
    }
    let after = serde_json::to_value(&spec.template).expect("template");
    if before != after || spec_changed {
        d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
    }
}
