//! The kubernetes deploy backend end to end: the real bot against the emulator, real
//! Postgres, and kube-rs talking to a fake Kubernetes API server on loopback
//! (`support/fake_kube.rs`) that the test drives through a rollout step by step.

mod support;

#[path = "support/fake_kube.rs"]
mod fake_kube;

use std::time::Duration;

use fake_kube::{FakeKube, Fault, condition, deployment};
use opsbot_commands::deploy::{Deploy, DeployState, deploy_by_id};
use sqlx::PgPool;
use support::TestBot;

const DEPLOYS: u64 = 111_000_000_000_000_111;
/// How long a deploy may take here before the test fails (they take well under a second).
const DEPLOY_WAIT: Duration = Duration::from_secs(30);

fn config(kubeconfig: &std::path::Path) -> String {
    let kubeconfig = kubeconfig.display();
    format!(
        r#"
[roles]
ops = ["deploy:*", "audit:*"]
[http]
listen = "127.0.0.1:0"
[channels]
deploys = {DEPLOYS}
[[services]]
name = "api"
environments = ["staging", "production"]
backend = {{ kind = "kubernetes", kubeconfig = "{kubeconfig}", context = "fake", namespace = "shop", deployment = "api", container = "api", image = "ghcr.io/acme/api:{{version}}", timeout = "30s", environments = {{ production = {{ namespace = "shop-prod" }} }} }}
[[services]]
name = "web"
environments = ["staging", "production", "qa"]
backend = {{ kind = "kubernetes", kubeconfig = "{kubeconfig}", namespace = "shop", deployment = "web", container = "web", image = "ghcr.io/acme/{{service}}:{{version}}", environments = {{ production = {{ deployment = "web-missing" }}, qa = {{ context = "wrong-token" }} }} }}
"#
    )
}

struct Setup {
    bot: TestBot,
    fake: FakeKube,
    _kubeconfig: tempfile::NamedTempFile,
}

async fn setup(pool: &PgPool) -> Setup {
    let fake = FakeKube::start().await;
    let kubeconfig = tempfile::NamedTempFile::new().expect("kubeconfig");
    std::fs::write(kubeconfig.path(), fake.kubeconfig()).expect("write kubeconfig");
    fake.insert(deployment("shop", "api", "api", "ghcr.io/acme/api:v1", 3));
    fake.insert(deployment(
        "shop-prod",
        "api",
        "api",
        "ghcr.io/acme/api:v1",
        5,
    ));
    fake.insert(deployment("shop", "web", "web", "ghcr.io/acme/web:v1", 2));
    let bot = TestBot::with_config(pool.clone(), &config(kubeconfig.path())).await;
    Setup {
        bot,
        fake,
        _kubeconfig: kubeconfig,
    }
}

fn description(event: &opsbot::emulator::EmulatorEvent) -> String {
    event
        .embeds
        .first()
        .and_then(|e| e["description"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Waits until deploy `id` has finished; returns it.
async fn finished(pool: &PgPool, id: i64) -> Deploy {
    let deadline = tokio::time::Instant::now() + DEPLOY_WAIT;
    loop {
        if let Some(d) = deploy_by_id(pool, id).await.expect("deploy")
            && !d.state.is_active()
        {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deploy #{id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The texts posted in deploy `id`'s thread, once its announcement is out (so the thread's
/// messages before it are delivered too).
async fn thread_lines(s: &mut Setup, id: i64, state: &str) -> Vec<String> {
    let headline = format!("deploy #{id} ");
    s.bot
        .next_event("the announcement", |e| {
            e.event == "post"
                && e.channel == "deploys"
                && e.content.contains(&headline)
                && e.content.contains(&format!("**{state}**"))
        })
        .await;
    let deploy = deploy_by_id(&s.bot.pool, id)
        .await
        .expect("deploy")
        .expect("exists");
    let thread = deploy.thread_id.expect("a thread") as u64;
    // Channels are delivered independently (each in order): the thread's last line may
    // land after the announcement.
    let last = format!("**{state}**");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lines: Vec<String> = s
            .bot
            .emulator
            .channel_messages(thread)
            .iter()
            .filter_map(|m| m["content"].as_str().map(str::to_owned))
            .collect();
        if lines.iter().any(|l| l.contains(&last)) || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits for opsbot's patch and its watch, then plays the controller: a surge of one pod
/// at a time over `replicas`, then the old pods go and the new become available.
async fn roll_out(fake: &FakeKube, watches_before: usize, ns: &str, name: &str, replicas: i32) {
    fake.patched().await;
    fake.watch_started(watches_before).await;
    for updated in 1..=replicas {
        fake.step(ns, name, replicas + 1, updated, replicas);
    }
    fake.step(ns, name, replicas, replicas, replicas - 1);
    fake.step(ns, name, replicas, replicas, replicas);
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_deploy_patches_the_image_follows_the_rollout_and_rolls_back(pool: PgPool) {
    let mut s = setup(&pool).await;

    let watches = s.fake.watches();
    let reply = s
        .bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:api version:v2 env:staging",
        )
        .await;
    assert!(
        reply.embeds[0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("deploy #1 api v2 → staging")),
        "{reply:?}"
    );
    roll_out(&s.fake, watches, "shop", "api", 3).await;
    let deploy = finished(&pool, 1).await;
    assert_eq!(deploy.state, DeployState::Succeeded, "{}", deploy.detail);
    assert_eq!(
        deploy.detail,
        "deployment shop/api rolled out: 3/3 updated, 3 available"
    );
    let lines = thread_lines(&mut s, 1, "succeeded").await;
    assert_eq!(
        lines,
        [
            "starting: Kubernetes deployment shop/api",
            "deployment shop/api: container api set to ghcr.io/acme/api:v2 (generation 2)",
            "waiting for the deployment controller to observe generation 2",
            "1/3 updated, 3 available, 3 old pending termination",
            "2/3 updated, 3 available, 2 old pending termination",
            "3/3 updated, 3 available, 1 old pending termination",
            "3/3 updated, 2 available",
            "3/3 updated, 3 available",
            "**succeeded**: deployment shop/api rolled out: 3/3 updated, 3 available",
        ]
    );

    // One strategic merge patch: the image of the one container, and who asked.
    let patches = s.fake.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let (content_type, body) = &patches[0];
    assert_eq!(content_type, "application/strategic-merge-patch+json");
    assert_eq!(
        body,
        &serde_json::json!({
            "metadata": { "annotations": {
                "kubernetes.io/change-cause": "opsbot deploy #1: api v2 to staging, requested by ana"
            } },
            "spec": { "template": { "spec": { "containers": [
                { "name": "api", "image": "ghcr.io/acme/api:v2" }
            ] } } }
        })
    );
    let live = s.fake.get("shop", "api");
    let images: Vec<_> = live
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap_or_default()))
        .collect();
    assert_eq!(
        images,
        [
            ("api".to_owned(), "ghcr.io/acme/api:v2".to_owned()),
            ("log-shipper".to_owned(), "fluent/fluent-bit:3.1".to_owned())
        ],
        "the other container is untouched"
    );

    // /deploy status: the live state of each environment.
    let status = s.bot.say("cy", &[], "/deploy status service:api").await;
    let text = description(&status);
    assert!(
        text.contains("☸ **api** in staging (`shop/api`): 3/3 updated, 3 available (3 ready) · `ghcr.io/acme/api:v2`"),
        "{text}"
    );
    assert!(
        text.contains("☸ **api** in production (`shop-prod/api`): 5/5 updated, 5 available (5 ready) · `ghcr.io/acme/api:v1`"),
        "{text}"
    );

    // v3, then /rollback returns to v2 through the same path.
    let watches = s.fake.watches();
    s.bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:api version:v3 env:staging",
        )
        .await;
    roll_out(&s.fake, watches, "shop", "api", 3).await;
    assert_eq!(finished(&pool, 2).await.state, DeployState::Succeeded);

    let watches = s.fake.watches();
    let rollback = s
        .bot
        .say("ana", &["ops"], "/rollback service:api env:staging")
        .await;
    assert!(
        rollback.embeds[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("api v2 → staging")),
        "{rollback:?}"
    );
    roll_out(&s.fake, watches, "shop", "api", 3).await;
    let deploy = finished(&pool, 3).await;
    assert_eq!(deploy.state, DeployState::Succeeded, "{}", deploy.detail);
    assert!(deploy.is_rollback);
    let (_, body) = s.fake.patches().pop().expect("the rollback's patch");
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/acme/api:v2"
    );
    assert_eq!(
        body["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "opsbot rollback #3: api v2 to staging, requested by ana"
    );

    // A paused Deployment is refused, and nothing is patched.
    s.fake.update("shop", "api", |d| {
        d.spec.as_mut().expect("spec").paused = Some(true)
    });
    let patched_before = s.fake.patches().len();
    s.bot
        .say("ana", &["ops"], "/rollback service:api env:staging")
        .await;
    let deploy = finished(&pool, 4).await;
    assert_eq!(deploy.state, DeployState::Failed);
    assert_eq!(
        deploy.detail,
        "deployment shop/api is paused (spec.paused), so it cannot be rolled back: its rollout would not start. Resume it first (kubectl rollout resume deployment/api -n shop) and try again"
    );
    assert_eq!(s.fake.patches().len(), patched_before);
}

/// Runs `/deploy run` of web `version` to `env` and returns the finished deploy.
async fn deploy_web(s: &mut Setup, id: i64, version: &str, env: &str) -> Deploy {
    s.bot
        .say(
            "ana",
            &["ops"],
            &format!("/deploy run service:web version:{version} env:{env}"),
        )
        .await;
    finished(&s.bot.pool, id).await
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn api_errors_become_the_failure_reason(pool: PgPool) {
    let mut s = setup(&pool).await;

    // 403 on the patch: the RBAC verb and resource that are missing.
    s.fake.fail(Fault {
        verb: "patch",
        code: 403,
        times: 1,
    });
    let d = deploy_web(&mut s, 1, "v2", "staging").await;
    assert_eq!(d.state, DeployState::Failed);
    assert_eq!(
        d.detail,
        "opsbot may not patch deployments in namespace shop (403 Forbidden): its Role needs the verb \"patch\" on the resource \"deployments\" of apiGroup \"apps\" (see the README's RBAC Role) (API server: deployments.apps \"web\" is forbidden: User \"system:serviceaccount:ops:opsbot\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"shop\")"
    );

    // 403 on the list the watch starts with.
    s.fake.fail(Fault {
        verb: "list",
        code: 403,
        times: 1,
    });
    let d = deploy_web(&mut s, 2, "v2", "staging").await;
    assert_eq!(d.state, DeployState::Failed);
    assert!(
        d.detail.starts_with("opsbot may not list deployments in namespace shop (403 Forbidden): its Role needs the verb \"list\""),
        "{}",
        d.detail
    );

    // 404: the production Deployment does not exist.
    let d = deploy_web(&mut s, 3, "v2", "production").await;
    assert_eq!(d.state, DeployState::Failed);
    assert_eq!(
        d.detail,
        "deployment shop/web-missing does not exist (404 Not Found): check the backend's namespace and deployment, and the kubeconfig context (API server: deployments.apps \"web-missing\" not found)"
    );

    // 401: qa's context has a token the API server does not accept.
    let d = deploy_web(&mut s, 4, "v2", "qa").await;
    assert_eq!(d.state, DeployState::Failed);
    assert!(
        d.detail
            .contains("did not accept opsbot's credentials (401 Unauthorized)"),
        "{}",
        d.detail
    );

    // 500 on the read.
    s.fake.fail(Fault {
        verb: "get",
        code: 500,
        times: 1,
    });
    let d = deploy_web(&mut s, 5, "v2", "staging").await;
    assert_eq!(d.state, DeployState::Failed);
    assert_eq!(
        d.detail,
        "the Kubernetes API server failed to get deployment shop/web (500 InternalError) (API server: Internal error occurred: etcdserver: request timed out)"
    );

    // 409 twice: retried, then the deploy goes through; so does a watch that failed once.
    s.fake.fail(Fault {
        verb: "patch",
        code: 409,
        times: 2,
    });
    s.fake.fail(Fault {
        verb: "watch",
        code: 500,
        times: 1,
    });
    let watches = s.fake.watches();
    s.bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:web version:v2 env:staging",
        )
        .await;
    roll_out(&s.fake, watches, "shop", "web", 2).await;
    let d = finished(&pool, 6).await;
    assert_eq!(d.state, DeployState::Succeeded, "{}", d.detail);
    assert_eq!(
        s.fake.requests("patch"),
        1 + 1 + 2 + 1,
        "the refused one, deploy #2's, two conflicts, and the one that went through"
    );
    assert_eq!(
        s.fake.requests("watch"),
        2,
        "deploy #2 never got to watch; #6 watched again after the 500"
    );

    // The progress deadline passes: the controller's condition fails the deploy.
    let watches = s.fake.watches();
    s.bot
        .say(
            "ana",
            &["ops"],
            "/deploy run service:web version:v3 env:staging",
        )
        .await;
    s.fake.patched().await;
    s.fake.watch_started(watches).await;
    s.fake.step("shop", "web", 3, 1, 2);
    s.fake.update("shop", "web", |d| {
        d.status.as_mut().expect("status").conditions = Some(vec![condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            "ReplicaSet \"web-2\" has timed out progressing.",
        )]);
    });
    let d = finished(&pool, 7).await;
    assert_eq!(d.state, DeployState::Failed);
    assert_eq!(
        d.detail,
        "deployment shop/web exceeded its progress deadline (ProgressDeadlineExceeded): ReplicaSet \"web-2\" has timed out progressing.; 1/2 updated, 2 available, 2 old pending termination"
    );

    // /deploy status says why an environment cannot be read.
    let status = s.bot.say("cy", &[], "/deploy status service:web").await;
    let text = description(&status);
    assert!(
        text.contains("☸ **web** in staging (`shop/web`): 1/2 updated, 2 available, 2 old pending termination (2 ready) · `ghcr.io/acme/web:v3` · rolling out"),
        "{text}"
    );
    assert!(
        text.contains("☸ **web** in production (`shop/web-missing`): live state unavailable: deployment shop/web-missing does not exist (404 Not Found)"),
        "{text}"
    );
    assert!(
        text.contains(
            "☸ **web** in qa (`shop/web`): live state unavailable: the Kubernetes API server at"
        ) && text.contains("did not accept opsbot's credentials (401 Unauthorized)"),
        "{text}"
    );

    // Every failure is in the audit trail with its reason.
    let failed: Vec<String> = opsbot_commands::audit::tail(&pool, 100)
        .await
        .expect("tail")
        .into_iter()
        .filter(|e| e.outcome == "failed")
        .map(|e| e.command)
        .collect();
    assert_eq!(failed.len(), 6, "{failed:?}");
}

#[path = "deploy_kubernetes/backend.rs"]
mod backend;
