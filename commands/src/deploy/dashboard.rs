//! The dashboard's deploys: `/deploys?service=api&environment=production&state=failed&who=ana&since=…`
//! (newest first, filtered), `/deploys/{id}`, and the environment matrix
//! (`/deploys/matrix`: each service × environment — what runs now, since when, by whom, the
//! previous good version, and what is on its way). Reads behind the same `audit:read` check
//! as every dashboard page ([`DashboardView`]).

use chrono::{DateTime, Utc};

use super::model::{Deploy, DeployState};
use super::store::{self, DeployRow};
use crate::audit::DashboardView;
use crate::desk::Desk;
use crate::error::CommandError;

/// Deploys one page of `/deploys` shows at most.
pub const PAGE_MAX: i64 = 100;
/// Longest filter value taken.
const FILTER_MAX: usize = 100;

/// `/deploys` filters; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
    /// A state (`succeeded`, `failed`, `running`, …).
    pub state: Option<String>,
    /// Who requested it (a name, case-insensitive).
    pub who: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: only deploys older than this id.
    pub before_id: Option<i64>,
}

/// One page of deploys, newest first; `next_cursor` pages on.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployPage {
    pub deploys: Vec<Deploy>,
    pub next_cursor: Option<i64>,
}

/// The deploy a cell of the matrix names.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MatrixDeploy {
    pub id: i64,
    pub version: String,
    pub by: String,
    pub at: Option<DateTime<Utc>>,
    pub state: String,
}

/// One service in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixCell {
    pub service: String,
    pub environment: String,
    /// The newest succeeded deploy: what runs now (`at`: when it finished).
    pub current: Option<MatrixDeploy>,
    /// The succeeded deploy before it of another version: where a rollback goes.
    pub previous_good: Option<MatrixDeploy>,
    /// A deploy requested, approved or running now.
    pub active: Option<MatrixDeploy>,
}

#[derive(Debug, sqlx::FromRow)]
struct MatrixRow {
    service: String,
    environment: String,
    current_id: Option<i64>,
    current_version: Option<String>,
    current_by: Option<String>,
    current_at: Option<DateTime<Utc>>,
    previous_id: Option<i64>,
    previous_version: Option<String>,
    previous_by: Option<String>,
    previous_at: Option<DateTime<Utc>>,
    active_id: Option<i64>,
    active_version: Option<String>,
    active_by: Option<String>,
    active_at: Option<DateTime<Utc>>,
    active_state: Option<String>,
}

fn cell(
    id: Option<i64>,
    version: Option<String>,
    by: Option<String>,
    at: Option<DateTime<Utc>>,
    state: &str,
) -> Option<MatrixDeploy> {
    Some(MatrixDeploy {
        id: id?,
        version: version.unwrap_or_default(),
        by: by.unwrap_or_default(),
        at,
        state: state.to_owned(),
    })
}

/// Each pair's current, previous good and active deploy: three index probes per pair on
/// `deploys_history_idx` (and the one-active partial index).
const MATRIX: &str = r#"
SELECT p.service, p.environment,
       cur.id AS current_id, cur.version AS current_version, cur.requested_by_name AS current_by,
       cur.finished_at AS current_at,
       prev.id AS previous_id, prev.version AS previous_version,
       prev.requested_by_name AS previous_by, prev.finished_at AS previous_at,
       act.id AS active_id, act.version AS active_version, act.requested_by_name AS active_by,
       act.requested_at AS active_at, act.state AS active_state
FROM unnest($1::text[], $2::text[]) AS p(service, environment)
LEFT JOIN LATERAL (
    SELECT d.id, d.version, d.requested_by_name, d.finished_at FROM deploys d
    WHERE d.service = p.service AND d.environment = p.environment AND d.state = 'succeeded'
    ORDER BY d.id DESC LIMIT 1) cur ON true
LEFT JOIN LATERAL (
    SELECT d.id, d.version, d.requested_by_name, d.finished_at FROM deploys d
    WHERE d.service = p.service AND d.environment = p.environment AND d.state = 'succeeded'
      AND d.id < cur.id AND d.version <> cur.version
    ORDER BY d.id DESC LIMIT 1) prev ON true
LEFT JOIN LATERAL (
    SELECT d.id, d.version, d.requested_by_name, d.requested_at, d.state FROM deploys d
    WHERE d.service = p.service AND d.environment = p.environment
      AND d.state IN ('requested', 'approved', 'running')
    LIMIT 1) act ON true
ORDER BY p.service, p.environment
"#;

const FILTERED: &str = "
    WHERE ($1::text IS NULL OR d.service = $1)
      AND ($2::text IS NULL OR d.environment = $2)
      AND ($3::text IS NULL OR d.state = $3)
      AND ($4::text IS NULL OR lower(d.requested_by_name) = lower($4))
      AND ($5::timestamptz IS NULL OR d.requested_at >= $5)
      AND ($6::timestamptz IS NULL OR d.requested_at < $6)
      AND ($7::bigint IS NULL OR d.id < $7)
    ORDER BY d.id DESC LIMIT $8";

fn check(name: &str, value: &Option<String>) -> Result<(), CommandError> {
    match value {
        Some(v) if v.chars().count() > FILTER_MAX => Err(CommandError::Invalid(format!(
            "{name}: longer than {FILTER_MAX} characters"
        ))),
        _ => Ok(()),
    }
}

impl Desk {
    /// Deploys matching `filter`, newest first, [`PAGE_MAX`] a page.
    pub async fn dashboard_deploys_filtered(
        &self,
        _view: &DashboardView,
        filter: &DeployFilter,
    ) -> Result<DeployPage, CommandError> {
        if let Some(state) = filter.state.as_deref()
            && DeployState::parse(state).is_none()
        {
            return Err(CommandError::Invalid(format!(
                "state: `{}` is not a deploy state; one of requested, approved, running, succeeded, failed, cancelled, rejected, expired",
                state.chars().take(FILTER_MAX).collect::<String>()
            )));
        }
        for (name, value) in [
            ("service", &filter.service),
            ("environment", &filter.environment),
            ("who", &filter.who),
        ] {
            check(name, value)?;
        }
        let mut rows: Vec<DeployRow> = store::select_deploys(&self.pool, FILTERED, |q| {
            q.bind(filter.service.clone())
                .bind(filter.environment.clone())
                .bind(filter.state.clone())
                .bind(filter.who.clone())
                .bind(filter.since)
                .bind(filter.until)
                .bind(filter.before_id)
                .bind(PAGE_MAX + 1)
        })
        .await?;
        let more = rows.len() as i64 > PAGE_MAX;
        rows.truncate(PAGE_MAX as usize);
        let deploys: Vec<Deploy> = rows.into_iter().map(DeployRow::into_deploy).collect();
        Ok(DeployPage {
            next_cursor: if more {
                deploys.last().map(|d| d.id)
            } else {
                None
            },
            deploys,
        })
    }

    /// The newest deploys, for the dashboard's deploys page.
    pub async fn dashboard_deploys(
        &self,
        _view: &DashboardView,
        limit: i64,
    ) -> Result<Vec<Deploy>, CommandError> {
        Ok(store::recent_deploys(&self.pool, limit).await?)
    }

    /// One deploy by id, for its dashboard page.
    pub async fn dashboard_deploy(
        &self,
        _view: &DashboardView,
        id: i64,
    ) -> Result<Option<Deploy>, CommandError> {
        Ok(store::deploy_by_id(&self.pool, id).await?)
    }

    /// Every configured service × environment, and any other pair that has deploys.
    pub async fn deploy_matrix(
        &self,
        _view: &DashboardView,
    ) -> Result<Vec<MatrixCell>, CommandError> {
        let mut pairs: Vec<(String, String)> = self
            .deploys()
            .services
            .values()
            .flat_map(|s| s.environments.iter().map(|e| (s.name.clone(), e.clone())))
            .collect();
        let seen: Vec<(String, String)> = sqlx::query_as(
            "SELECT service, environment FROM deploys GROUP BY service, environment",
        )
        .fetch_all(&self.pool)
        .await?;
        pairs.extend(seen);
        pairs.sort();
        pairs.dedup();
        let (services, environments): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
        let rows: Vec<MatrixRow> = sqlx::query_as(MATRIX)
            .bind(services)
            .bind(environments)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| MatrixCell {
                current: cell(
                    r.current_id,
                    r.current_version,
                    r.current_by,
                    r.current_at,
                    "succeeded",
                ),
                previous_good: cell(
                    r.previous_id,
                    r.previous_version,
                    r.previous_by,
                    r.previous_at,
                    "succeeded",
                ),
                active: cell(
                    r.active_id,
                    r.active_version,
                    r.active_by,
                    r.active_at,
                    r.active_state.as_deref().unwrap_or_default(),
                ),
                service: r.service,
                environment: r.environment,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;
    use crate::access::RoleMap;
    use crate::actor::{Actor, Source};
    use crate::desk::Invocation;

    async fn deploy(pool: &PgPool, env: &str, version: &str, state: &str, by: &str) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO deploys (correlation_id, service, environment, version, state,
                                  requested_by_id, requested_by_name, finished_at, backend)
             VALUES (gen_random_uuid(), 'api', $1, $2, $3, 7, $4,
                     CASE WHEN $3 IN ('succeeded', 'failed') THEN now() END, 'command')
             RETURNING id",
        )
        .bind(env)
        .bind(version)
        .bind(state)
        .bind(by)
        .fetch_one(pool)
        .await
        .expect("deploy")
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn the_matrix_and_the_filters(pool: PgPool) {
        let v1 = deploy(&pool, "production", "v1", "succeeded", "ana").await;
        deploy(&pool, "production", "v2", "failed", "bo").await;
        deploy(&pool, "production", "v1", "succeeded", "ana").await;
        let v3 = deploy(&pool, "production", "v3", "succeeded", "bo").await;
        let v4 = deploy(&pool, "production", "v4", "running", "cy").await;
        deploy(&pool, "staging", "v4", "succeeded", "cy").await;
        let roles = RoleMap::new(
            [("ops".to_owned(), vec!["audit:read".to_owned()])]
                .into_iter()
                .collect(),
        )
        .expect("roles");
        let desk = Desk::new(pool.clone(), roles);
        let inv = Invocation::new(
            Actor {
                id: 1,
                name: "ana".into(),
                roles: vec!["ops".into()],
                source: Source::Web,
            },
            "dashboard",
            serde_json::json!({}),
        );
        let view = desk.dashboard_view(&inv).await.expect("view");
        let matrix = desk.deploy_matrix(&view).await.expect("matrix");
        assert_eq!(matrix.len(), 2);
        let production = &matrix[0];
        assert_eq!(production.environment, "production");
        let current = production.current.as_ref().expect("current");
        assert_eq!(
            (current.id, current.version.as_str(), current.by.as_str()),
            (v3, "v3", "bo")
        );
        // The previous good version is another version (v1 ran twice; v2 failed).
        let previous = production.previous_good.as_ref().expect("previous");
        assert_eq!(previous.version, "v1");
        assert!(previous.id > v1, "the newer of the two v1 deploys");
        let active = production.active.as_ref().expect("active");
        assert_eq!((active.id, active.state.as_str()), (v4, "running"));
        assert_eq!(matrix[1].previous_good, None);

        let page = desk
            .dashboard_deploys_filtered(
                &view,
                &DeployFilter {
                    environment: Some("production".into()),
                    who: Some("BO".into()),
                    ..DeployFilter::default()
                },
            )
            .await
            .expect("filtered");
        let versions: Vec<&str> = page.deploys.iter().map(|d| d.version.as_str()).collect();
        assert_eq!(versions, ["v3", "v2"]);
        let refused = desk
            .dashboard_deploys_filtered(
                &view,
                &DeployFilter {
                    state: Some("done".into()),
                    ..DeployFilter::default()
                },
            )
            .await
            .expect_err("not a state");
        assert!(
            refused
                .to_string()
                .starts_with("state: `done` is not a deploy state")
        );
    }
}
