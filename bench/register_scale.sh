#!/usr/bin/env bash
# Small register against city register, on one API worker (docs/scale.md, issue 15).
#
#   bash bench/register_scale.sh SMALL_DB CITY_DB [PAIRS]
#
# Both databases live on the local PostgreSQL, migrated and seeded (`python -m api serve --demo`
# once for the small one, `python -m api seed-city ...` for the city one), with this checkout's
# keys. For each pair, in turn: a fresh API server (one worker, simulators in their own process,
# Redis database flushed, the clerk look-up limits raised because the bench is one clerk) on the
# small register, `python -m bench run --scenario register-reads` with its ceiling, then the same
# on the city register; at the end `python -m bench compare` over all runs (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:?small database name}
city=${2:?city database name}
pairs=${3:-3}
day=$(date -u +%F)
port=8300
sim_base=8930
users=1000
py=.venv/bin/python

"$py" -m integrations.simulators --port-base "$sim_base" > /tmp/register-scale-sims.log 2>&1 &
sims=$!
trap 'kill $sims 2>/dev/null || true' EXIT
sleep 3
names=(civil_registry tax elicense appointment_centre utilities_simulator banks_simulator sms_gateway)
for i in "${!names[@]}"; do
    var=$(echo "ESTATE_${names[$i]}_URL" | tr '[:lower:]' '[:upper:]')
    export "$var=http://127.0.0.1:$((sim_base + i))"
done
export ESTATE_SIMULATORS_IN_PROCESS=false ESTATE_LOG_LEVEL=WARNING ESTATE_PORT=$port
export ESTATE_CLERK_LOOKUPS_PER_MINUTE=100000000 ESTATE_CLERK_LOOKUPS_PER_DAY=100000000

run() { # run DB LABEL
    local url=postgres://postgres@127.0.0.1:5432/$1
    DATABASE_URL=$url "$py" -m api migrate
    redis-cli -n 5 flushdb > /dev/null
    DATABASE_URL=$url REDIS_URL=redis://127.0.0.1:6379/5 "$py" -m api serve > "/tmp/register-scale-$2.log" 2>&1 &
    local server=$!
    for _ in $(seq 60); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/offices" && break; sleep 0.5; done
    "$py" -m bench run --scenario register-reads --base-url "http://127.0.0.1:$port" --database-url "$url" \
        --users "$users" --duration 20 --server-pid "$server" --out "bench/results/register-reads-$2-$day.json"
    kill "$server"; wait "$server" || true
}

smalls=() cities=()
for n in $(seq "$pairs"); do
    run "$small" "small-$n"; smalls+=("bench/results/register-reads-small-$n-$day.json")
    run "$city" "city-$n"; cities+=("bench/results/register-reads-city-$n-$day.json")
done
"$py" -m bench compare --small "${smalls[@]}" --city "${cities[@]}"
