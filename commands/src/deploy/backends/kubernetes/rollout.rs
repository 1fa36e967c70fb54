//! Whether a Deployment's rollout is done, exactly as `kubectl rollout status` decides it
//! (kubectl `pkg/polymorphichelpers/rollout_status.go`, `DeploymentStatusViewer`).

use k8s_openapi::api::apps::v1::Deployment;

/// The `Progressing` condition's reason once `spec.progressDeadlineSeconds` has passed
/// without progress (`TimedOutReason` in the deployment controller).
const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Replica counts of a Deployment, as `/deploy status` and progress lines show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `spec.replicas` (the API server defaults it to 1).
    pub desired: i32,
    /// `status.updatedReplicas`: pods of the newest ReplicaSet.
    pub updated: i32,
    /// `status.replicas`: all pods, old ones included.
    pub total: i32,
    pub ready: i32,
    pub available: i32,
}

impl Counts {
    pub fn of(deployment: &Deployment) -> Counts {
        let status = deployment.status.clone().unwrap_or_default();
        Counts {
            desired: deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1),
            updated: status.updated_replicas.unwrap_or(0),
            total: status.replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
        }
    }

    /// `3/5 updated, 2 available` (and old pods still running, if any).
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}/{} updated, {} available",
            self.updated, self.desired, self.available
        );
        let old = self.total - self.updated;
        if old > 0 {
            line.push_str(&format!(", {old} old pending termination"));
        }
        line
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// `status.observedGeneration` is behind `metadata.generation`: the controller has not
    /// seen the change yet.
    NotObserved { generation: i64, observed: i64 },
    /// Observed, not finished: `waiting` says what for, as kubectl says it.
    Progressing { counts: Counts, waiting: String },
    /// Every replica is updated and available, and no old one is left.
    Complete(Counts),
    /// The `Progressing` condition says the progress deadline passed.
    DeadlineExceeded { counts: Counts, message: String },
}

/// The rollout state of `deployment`, by kubectl's rules in kubectl's order.
pub fn rollout_status(deployment: &Deployment) -> Rollout {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if generation > observed {
        return Rollout::NotObserved {
            generation,
            observed,
        };
    }
    let counts = Counts::of(deployment);
    let deadline = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
    });
    if let Some(condition) = deadline {
        return Rollout::DeadlineExceeded {
            counts,
            message: condition.message.clone().unwrap_or_default(),
        };
    }
    // kubectl only checks updated < desired when spec.replicas is set; the API server
    // always sets it, and `Counts::of` defaults it to 1 as the server would.
    let waiting = if counts.updated < counts.desired {
        format!(
            "{} out of {} new replicas have been updated",
            counts.updated, counts.desired
        )
    } else if counts.total > counts.updated {
        format!(
            "{} old replicas are pending termination",
            counts.total - counts.updated
        )
    } else if counts.available < counts.updated {
        format!(
            "{} of {} updated replicas are available",
            counts.available, counts.updated
        )
    } else {
        return Rollout::Complete(counts);
    };
    Rollout::Progressing { counts, waiting }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A Deployment with `spec.replicas`, `generation`, and status
    /// (observed, replicas, updated, available), optionally a Progressing reason.
    fn deployment(
        desired: Option<i32>,
        generation: i64,
        (observed, total, updated, available): (i64, i32, i32, i32),
        progressing: Option<&str>,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("api".into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: desired,
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(total),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ready_replicas: Some(available),
                conditions: progressing.map(|reason| {
                    vec![DeploymentCondition {
                        type_: "Progressing".into(),
                        status: "False".into(),
                        reason: Some(reason.into()),
                        message: Some(format!("ReplicaSet \"api-1\" {reason}")),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    /// (spec.replicas, metadata.generation, (observedGeneration, replicas, updated,
    /// available), Progressing reason, expected outcome).
    type Case = (
        Option<i32>,
        i64,
        (i64, i32, i32, i32),
        Option<&'static str>,
        &'static str,
    );

    fn kind(rollout: &Rollout) -> String {
        match rollout {
            Rollout::NotObserved { .. } => "not observed".into(),
            Rollout::Progressing { waiting, .. } => format!("waiting: {waiting}"),
            Rollout::Complete(_) => "complete".into(),
            Rollout::DeadlineExceeded { .. } => "deadline exceeded".into(),
        }
    }

    #[test]
    fn table_of_deployment_states() {
        // (desired, generation, (observed, total, updated, available), reason) → outcome
        let table: &[Case] = &[
            (Some(5), 2, (1, 5, 5, 5), None, "not observed"),
            // The controller has not seen the new spec: even a deadline is not trusted yet.
            (
                Some(5),
                3,
                (2, 5, 5, 5),
                Some("ProgressDeadlineExceeded"),
                "not observed",
            ),
            (
                Some(5),
                2,
                (2, 6, 3, 2),
                None,
                "waiting: 3 out of 5 new replicas have been updated",
            ),
            (
                Some(5),
                2,
                (2, 7, 5, 4),
                None,
                "waiting: 2 old replicas are pending termination",
            ),
            (
                Some(5),
                2,
                (2, 5, 5, 4),
                None,
                "waiting: 4 of 5 updated replicas are available",
            ),
            (Some(5), 2, (2, 5, 5, 5), None, "complete"),
            // Observed generation ahead (a later change already seen) counts as observed.
            (Some(5), 2, (3, 5, 5, 5), None, "complete"),
            (
                Some(5),
                2,
                (2, 6, 3, 2),
                Some("ProgressDeadlineExceeded"),
                "deadline exceeded",
            ),
            // Other Progressing reasons are progress, not failure.
            (
                Some(5),
                2,
                (2, 6, 3, 2),
                Some("ReplicaSetUpdated"),
                "waiting: 3 out of 5 new replicas have been updated",
            ),
            (
                Some(5),
                2,
                (2, 5, 5, 5),
                Some("NewReplicaSetAvailable"),
                "complete",
            ),
            // Scaled to zero: nothing to wait for.
            (Some(0), 4, (4, 0, 0, 0), None, "complete"),
            // spec.replicas unset defaults to one.
            (
                None,
                2,
                (2, 0, 0, 0),
                None,
                "waiting: 0 out of 1 new replicas have been updated",
            ),
            (None, 2, (2, 1, 1, 1), None, "complete"),
        ];
        for (desired, generation, status, reason, expected) in table {
            let d = deployment(*desired, *generation, *status, *reason);
            assert_eq!(
                kind(&rollout_status(&d)),
                *expected,
                "desired {desired:?}, generation {generation}, status {status:?}, reason {reason:?}"
            );
        }
    }

    #[test]
    fn a_deployment_without_status_is_not_observed() {
        let d = Deployment {
            metadata: ObjectMeta {
                generation: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            rollout_status(&d),
            Rollout::NotObserved {
                generation: 1,
                observed: 0
            }
        );
    }

    #[test]
    fn progress_lines() {
        let d = deployment(Some(5), 2, (2, 6, 3, 2), None);
        assert_eq!(
            Counts::of(&d).line(),
            "3/5 updated, 2 available, 3 old pending termination"
        );
        let d = deployment(Some(5), 2, (2, 5, 5, 4), None);
        assert_eq!(Counts::of(&d).line(), "5/5 updated, 4 available");
    }
}
