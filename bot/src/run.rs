//! `opsbot run`: the main job. HTTP server, audit sealer, outbox dispatcher and, when a token
//! is configured, the Discord gateway; graceful shutdown on SIGTERM or SIGINT.
//! `opsbot shell` starts the same [`Services`], pointed at the emulator.

use std::time::Duration;

use anyhow::Context as _;
use opsbot_commands::Desk;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::background::{self, Loop};
use crate::config::{Config, GatewayMode};
use crate::database::Database;
use crate::discord::chat::SerenityChat;
use crate::discord::{GatewaySettings, GatewayStatus, leader};
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::web::{WebState, router};
use crate::{sealer, telemetry};
use opsbot_commands::admission::{self, Admission};
use opsbot_commands::deploy::tracker;
use opsbot_commands::events;
use opsbot_commands::lease::Leases;

/// How often a replica renews its `replicas` row and its lease gauges.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Leases whose `opsbot_lease_held{lease}` gauge every replica reports (0 or 1).
const KNOWN_LEASES: [&str; 9] = [
    "audit sealer",
    "audit checkpoint",
    "deploy tracker",
    "incident reconciler",
    "incident reminders",
    "alerts",
    "digests",
    "events nats",
    "events pubsub",
];

/// Renews this replica's heartbeat and sets `opsbot_lease_held{lease}` for what it holds.
async fn replica_heartbeat(
    leases: &Leases,
    me: &opsbot_commands::replicas::ReplicaInfo,
) -> Result<(), sqlx::Error> {
    leases.heartbeat(me).await?;
    let held = leases.held_here().await?;
    let gateway = held
        .iter()
        .any(|name| name.starts_with(leader::GATEWAY_LEASE));
    metrics::gauge!("opsbot_lease_held", "lease" => leader::GATEWAY_LEASE).set(if gateway {
        1.0
    } else {
        0.0
    });
    for name in KNOWN_LEASES
        .iter()
        .copied()
        .chain(held.iter().map(String::as_str))
    {
        let holds = held.iter().any(|h| h == name);
        if !name.starts_with(leader::GATEWAY_LEASE) {
            metrics::gauge!("opsbot_lease_held", "lease" => name.to_owned()).set(if holds {
                1.0
            } else {
                0.0
            });
        }
    }
    Ok(())
}

/// This machine's name, for `opsbot status` (the pod's name on Kubernetes).
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let name = std::fs::read_to_string(path).ok()?.trim().to_owned();
            (!name.is_empty()).then_some(name)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// How long in-flight work may take to finish after a shutdown signal before opsbot exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let discord = match &config.discord.token {
        Some(token) => Some(GatewaySettings {
            token: token.expose().to_owned(),
            guild_ids: config.discord.guild_ids.clone(),
            api_base: config.discord.api_base.clone(),
            source: opsbot_commands::Source::Discord,
        }),
        None => {
            tracing::warn!(
                "no Discord token configured ([discord] token or OPSBOT_DISCORD_TOKEN): running without the Discord gateway; outbox messages wait until a token is configured"
            );
            None
        }
    };
    let services = Services::start(&config, discord, HttpBind::Required, shutdown.clone()).await?;
    shutdown.cancelled().await;
    services.stop().await
}

/// Whether failing to bind `[http] listen` stops start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpBind {
    Required,
    /// The shell runs beside a real `opsbot run` often enough: it warns and goes on.
    Optional,
}

/// Everything that runs while opsbot runs; stopped together, in order.
#[derive(Debug)]
pub struct Services {
    pub db: Database,
    pub desk: Desk,
    /// Where the HTTP server listens, if it started.
    pub http_addr: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The Discord gateway's state (also on `/readyz` and in `/metrics`).
    pub gateway: std::sync::Arc<GatewayStatus>,
    /// Seals (and checkpoints) once more in [`Services::stop`].
    sealer: sealer::Sealer,
}

impl Services {
    /// Connects and migrates the database, then starts the HTTP server, the sealer and, with
    /// `discord`, the outbox dispatcher and the gateway. A Discord outage stops nothing: the
    /// gateway is supervised (reconnects with backoff until `shutdown`) while the rest serves.
    pub async fn start(
        config: &Config,
        discord: Option<GatewaySettings>,
        http: HttpBind,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Services> {
        let db = Database::connect(&config.database).await?;
        db.migrate().await?;
        let mut desk = Desk::new(db.pool.clone(), config.role_map())
            .with_deploys(deploy_catalog(config))
            .with_alerts(config.alerts_catalog())
            .with_overview(opsbot_commands::overview::OverviewSettings {
                change_failure_window: config.deploy.change_failure_window,
            });
        desk = desk.with_incidents(config.incident_catalog());
        desk = desk.with_digests(config.digest_catalog());
        desk = desk.with_metrics(config.metrics_catalog())?;
        // Commands in flight: a few per database connection; past that, "busy, try again".
        let max_connections = usize::try_from(config.database.max_connections).unwrap_or(10);
        let in_flight = config.discord.max_in_flight.map_or(
            admission::IN_FLIGHT_PER_CONNECTION.saturating_mul(max_connections),
            |n| usize::try_from(n).unwrap_or(usize::MAX),
        );
        desk = desk.with_admission(Admission::new(in_flight, admission::DEFAULT_WAIT));
        if let Some(settings) = &discord {
            desk = desk.with_chat(std::sync::Arc::new(SerenityChat::new(settings)));
        }
        let tasks = TaskTracker::new();
        let gateway = match &discord {
            Some(_) => GatewayStatus::connecting(),
            None => GatewayStatus::disabled(),
        };

        // This replica's identity as a lease holder, for every background loop below.
        let leases = Leases::new(db.pool.clone());
        // Events out: one publisher per configured sink (`[events.nats]`, `[events.pubsub]`).
        let publishers: Vec<_> = config
            .events
            .sinks()?
            .into_iter()
            .map(|sink| std::sync::Arc::new(events::Publisher::new(db.pool.clone(), sink)))
            .collect();
        let mut http_addr = None;
        match tokio::net::TcpListener::bind(config.http.listen).await {
            Ok(listener) => {
                http_addr = Some(listener.local_addr()?);
                tracing::info!(listen = %listener.local_addr()?, "HTTP server listening");
                let mut app = router(WebState {
                    metrics: telemetry::metrics(),
                    desk: desk.clone(),
                    dashboard: std::sync::Arc::new(crate::web::dashboard(config)),
                })
                .layer(axum::Extension(gateway.clone()))
                .layer(axum::Extension(leases.clone()));
                if !publishers.is_empty() {
                    app = app.layer(axum::Extension(events::EventsReadiness::new(
                        db.pool.clone(),
                        publishers.iter().map(|p| p.sink_name()).collect(),
                    )));
                }
                let http_shutdown = shutdown.clone();
                tasks.spawn(async move {
                    let served = axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .with_graceful_shutdown(http_shutdown.clone().cancelled_owned())
                    .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "HTTP server failed");
                        http_shutdown.cancel();
                    }
                });
            }
            Err(e) if http == HttpBind::Optional => {
                tracing::warn!(listen = %config.http.listen, error = %e, "HTTP server not started");
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot listen on {} ([http] listen / OPSBOT_HTTP_LISTEN)",
                        config.http.listen
                    )
                });
            }
        }
        // Every background loop, in one place: name, interval, lease (one replica at a time)
        // and liveness (`opsbot_background_last_success_timestamp_seconds{loop}`).
        let sealer = sealer::Sealer::new(db.pool.clone(), &config.audit)?;
        let seal = sealer.clone();
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "audit sealer",
                interval: opsbot_commands::audit::SEAL_INTERVAL,
                lease: Some("audit sealer"),
                wake: None,
            },
            shutdown.clone(),
            move || {
                let seal = seal.clone();
                async move { seal.seal_round().await }
            },
        );
        if let Some(interval) = sealer.checkpoint_interval() {
            let checkpoint = sealer.clone();
            background::spawn(
                &tasks,
                &leases,
                Loop {
                    name: "audit checkpoint",
                    interval,
                    lease: None,
                    wake: None,
                },
                shutdown.clone(),
                move || {
                    let checkpoint = checkpoint.clone();
                    async move { checkpoint.checkpoint_round().await }
                },
            );
        }
        let (track_desk, track_tasks, track_stop) = (desk.clone(), tasks.clone(), shutdown.clone());
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "deploy tracker",
                interval: tracker::TRACK_INTERVAL,
                lease: Some("deploy tracker"),
                wake: Some(desk.deploy_tracker_wakeup()),
            },
            shutdown.clone(),
            move || {
                let (desk, tasks, stop) =
                    (track_desk.clone(), track_tasks.clone(), track_stop.clone());
                async move { tracker::tick(&desk, &tasks, &stop).await }
            },
        );
        let incident_desk = desk.clone();
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "incident reconciler",
                interval: opsbot_commands::incident::RECONCILE_INTERVAL,
                lease: Some("incident reconciler"),
                wake: None,
            },
            shutdown.clone(),
            move || {
                let desk = incident_desk.clone();
                async move { desk.incident_reconcile().await }
            },
        );
        let remind_desk = desk.clone();
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "incident reminders",
                interval: opsbot_commands::incident::reminders::REMIND_INTERVAL,
                lease: Some("incident reminders"),
                wake: None,
            },
            shutdown.clone(),
            move || {
                let desk = remind_desk.clone();
                async move { desk.incident_remind(chrono::Utc::now()).await.map(|_| ()) }
            },
        );
        let digest_desk = desk.clone();
        if !config.digests.is_empty() {
            background::spawn(
                &tasks,
                &leases,
                Loop {
                    name: "digests",
                    interval: opsbot_commands::digest::commands::DIGEST_INTERVAL,
                    lease: Some("digests"),
                    wake: None,
                },
                shutdown.clone(),
                move || {
                    let desk = digest_desk.clone();
                    async move { desk.digest_tick(chrono::Utc::now()).await.map(|_| ()) }
                },
            );
        }
        let silence_desk = desk.clone();
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "alerts",
                interval: opsbot_commands::alerts::silence_upkeep::EXPIRY_INTERVAL,
                lease: Some("alerts"),
                wake: Some(desk.alerts().upkeep_wake.clone()),
            },
            shutdown.clone(),
            move || {
                let desk = silence_desk.clone();
                async move { desk.alert_upkeep().await.map(|_| ()) }
            },
        );
        for publisher in publishers {
            let name = publisher.loop_name();
            background::spawn(
                &tasks,
                &leases,
                Loop {
                    name,
                    interval: events::PUBLISH_INTERVAL,
                    lease: Some(name),
                    wake: None,
                },
                shutdown.clone(),
                move || {
                    let publisher = publisher.clone();
                    async move { publisher.round().await.map(|_| ()) }
                },
            );
        }
        let prune_desk = desk.clone();
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "webhook signatures",
                interval: Duration::from_secs(60),
                lease: None,
                wake: None,
            },
            shutdown.clone(),
            move || {
                let desk = prune_desk.clone();
                async move { desk.forget_old_report_signatures().await.map(|_| ()) }
            },
        );
        let flush_desk = desk.clone();
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "refusal flush",
                interval: REFUSAL_FLUSH_INTERVAL,
                lease: None,
                wake: None,
            },
            shutdown.clone(),
            move || {
                let desk = flush_desk.clone();
                async move { desk.flush_refusals(false).await.map(|_| ()) }
            },
        );

        let heartbeat = leases.clone();
        let me = opsbot_commands::replicas::ReplicaInfo {
            host: hostname(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        background::spawn(
            &tasks,
            &leases,
            Loop {
                name: "replica heartbeat",
                interval: HEARTBEAT_INTERVAL,
                lease: None,
                wake: None,
            },
            shutdown.clone(),
            move || {
                let (leases, me) = (heartbeat.clone(), me.clone());
                async move { replica_heartbeat(&leases, &me).await }
            },
        );

        match discord {
            None => {}
            Some(settings) => {
                let dispatcher = Dispatcher::new(
                    db.pool.clone(),
                    &settings.api_base,
                    secrecy::SecretString::from(settings.token.clone()),
                    DispatchSettings::default(),
                )?;
                // Every replica drains the outbox (a channel by one dispatcher at a time).
                tasks.spawn(
                    dispatcher
                        .with_claimer(leases.holder())
                        .run(shutdown.clone()),
                );
                match config.discord.gateway {
                    GatewayMode::Off => gateway.set_standby(
                        "[discord] gateway = \"off\": this replica never connects to Discord",
                    ),
                    GatewayMode::Leader => {
                        tasks.spawn(leader::lead_gateway(
                            leases.clone(),
                            leader::lease_name(&settings),
                            settings,
                            desk.clone(),
                            gateway.clone(),
                            shutdown.clone(),
                        ));
                    }
                }
            }
        }
        Ok(Services {
            db,
            desk,
            http_addr,
            shutdown,
            tasks,
            gateway,
            sealer,
        })
    }

    /// Stops everything: in-flight work finishes (bounded by [`SHUTDOWN_GRACE`]), the audit
    /// chain is sealed, the database closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tracing::info!("shutting down: finishing in-flight work");
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "some work did not finish in time"
            );
        }
        if let Err(e) = self.desk.flush_refusals(true).await {
            tracing::warn!(error = %e, "sampled refusals could not be written before exit");
        }
        self.sealer.seal_before_exit().await;
        self.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often sampled unauthenticated refusals of ended minutes go to the audit trail.
const REFUSAL_FLUSH_INTERVAL: Duration = Duration::from_secs(15);

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
    shutdown.cancel();
}

/// A kubernetes backend's Deployment for each of the service's environments.
fn kubernetes_spec(
    deployed_to: &[String],
    base: &crate::config::KubernetesTargetConfig,
    overrides: &std::collections::BTreeMap<String, crate::config::KubernetesTargetConfig>,
    timeout: std::time::Duration,
) -> opsbot_commands::deploy::backends::kubernetes::KubernetesSpec {
    use opsbot_commands::deploy::backends::kubernetes::{KubernetesSpec, KubernetesTarget};
    let targets = deployed_to
        .iter()
        .map(|env| {
            let t = match overrides.get(env) {
                Some(over) => base.overridden_by(over),
                None => base.clone(),
            };
            // The config requires deployment, container and image on the backend itself.
            let target = KubernetesTarget {
                kubeconfig: t.kubeconfig,
                context: t.context,
                namespace: t.namespace,
                deployment: t.deployment.unwrap_or_default(),
                container: t.container.unwrap_or_default(),
                image: t.image.unwrap_or_default(),
            };
            (env.clone(), target)
        })
        .collect();
    KubernetesSpec { targets, timeout }
}

/// What the config says about deploys, in the domain's terms.
pub fn deploy_catalog(config: &Config) -> opsbot_commands::deploy::DeployCatalog {
    use crate::config::BackendConfig;
    use opsbot_commands::deploy::backends::{BackendSpec, command, github_actions, webhook};
    use opsbot_commands::deploy::{DeployCatalog, EnvironmentPolicy, ServiceSpec};
    let secret = |s: &crate::config::Secret| secrecy::SecretString::from(s.expose().to_owned());
    let services = config
        .services
        .iter()
        .map(|service| {
            let backend = match &service.backend {
                BackendConfig::GithubActions {
                    repo,
                    workflow,
                    git_ref,
                    token,
                    api_base,
                    poll_interval,
                    timeout,
                } => BackendSpec::GithubActions(github_actions::GithubActionsSpec {
                    repo: repo.clone(),
                    workflow: workflow.clone(),
                    git_ref: git_ref.clone(),
                    token: secret(token),
                    api_base: api_base.clone(),
                    poll_interval: *poll_interval,
                    timeout: *timeout,
                }),
                BackendConfig::Webhook {
                    url,
                    secret: key,
                    timeout,
                } => BackendSpec::Webhook(webhook::WebhookSpec {
                    url: url.clone(),
                    secret: secret(key),
                    timeout: *timeout,
                }),
                BackendConfig::Command {
                    program,
                    args,
                    timeout,
                    workdir,
                } => BackendSpec::Command(command::CommandSpec {
                    program: program.clone(),
                    args: args.clone(),
                    timeout: *timeout,
                    workdir: workdir.clone(),
                }),
                BackendConfig::Kubernetes {
                    target,
                    environments,
                    timeout,
                } => BackendSpec::Kubernetes(kubernetes_spec(
                    &service.environments,
                    target,
                    environments,
                    *timeout,
                )),
            };
            (
                service.name.clone(),
                ServiceSpec {
                    name: service.name.clone(),
                    environments: service.environments.clone(),
                    backend,
                },
            )
        })
        .collect();
    let environments = config
        .environments
        .iter()
        .map(|(name, env)| {
            (
                name.clone(),
                EnvironmentPolicy {
                    approvals: env.approvals,
                    freeze: env.freeze.clone(),
                },
            )
        })
        .collect();
    DeployCatalog {
        services,
        environments,
        approval_timeout: config.deploy.approval_timeout,
        announce_channel: config.channels.deploys.map(|c| c as i64),
        public_url: config.http.public_url.clone(),
    }
}
