#!/usr/bin/env bash
# The deploy "backend" of the example `worker` service in opsbot.example.toml: it deploys
# nothing, it only shows what a command backend looks like from Discord or `opsbot shell`.
# Usage: example-deploy.sh SERVICE VERSION ENVIRONMENT. A version containing "bad" fails,
# so that a failed deploy can be tried too (`/deploy run service:worker version:v1-bad ...`).
set -euo pipefail

service="${1:?usage: example-deploy.sh SERVICE VERSION ENVIRONMENT}"
version="${2:?usage: example-deploy.sh SERVICE VERSION ENVIRONMENT}"
environment="${3:?usage: example-deploy.sh SERVICE VERSION ENVIRONMENT}"

echo "deploying ${service} ${version} to ${environment}"
sleep 0.5
echo "pulling image ${service}:${version}"
sleep 0.7
if [[ "${version}" == *bad* ]]; then
    echo "health check failed: ${service} ${version} does not start" >&2
    exit 1
fi
echo "rolling out to ${environment}: 1/2 instances"
sleep 0.7
echo "rolling out to ${environment}: 2/2 instances"
sleep 0.5
echo "${service} ${version} is live in ${environment}"
