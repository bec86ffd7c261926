#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer for the test suite, then runs the given command (if any)
# with TEST_DATABASE_URL / TEST_REDIS_URL pointing at them.
#
#   scripts/services.sh [COMMAND...]   ensure services, then exec COMMAND
#   scripts/services.sh stop           stop the private instances this script started
#
# Order of attempts for each service: already answering -> the machine's own service
# (pg_ctlcluster / redis-server on the standard port) -> a private instance under
# var/services (or ACCESSHIVE_SERVICES_DIR) on a free port. ACCESSHIVE_PRIVATE_SERVICES=1 skips
# straight to the private ones.
# A TEST_DATABASE_URL / TEST_REDIS_URL set by the caller is checked, never replaced.
# Never fails because a service is missing: the tests skip (or, with CI=true, fail) with a reason.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${ACCESSHIVE_SERVICES_DIR:-$ROOT/var/services}
PRIVATE_ONLY=${ACCESSHIVE_PRIVATE_SERVICES:-0}

say() { echo "services: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

answers() { # HOST PORT
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

wait_answers() { # HOST PORT SECONDS
	local tries=$(($3 * 4))
	while ((tries-- > 0)); do
		answers "$1" "$2" && return 0
		sleep 0.25
	done
	return 1
}

url_hostport() { # URL DEFAULT_PORT -> "host port"
	local rest=${1#*://}
	rest=${rest##*@}
	rest=${rest%%/*}
	rest=${rest%%\?*}
	if [[ $rest == *:* ]]; then echo "${rest%:*} ${rest##*:}"; else echo "${rest:-127.0.0.1} $2"; fi
}

# Below the kernel's ephemeral range (ip_local_port_range, 32768 by default): a port in it can
# be some connection's local end, which nothing answers on but a server cannot bind.
free_port() {
	local port tries=200 low=32768
	[[ -r /proc/sys/net/ipv4/ip_local_port_range ]] &&
		read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	((low > 21000)) || low=60000
	while ((tries-- > 0)); do
		port=$((20000 + RANDOM % (low - 20000)))
		answers 127.0.0.1 "$port" || {
			echo "$port"
			return 0
		}
	done
	return 1
}

# --- PostgreSQL ---------------------------------------------------------------------------

pg_as=()
pg_private_setup() {
	have initdb && have pg_ctl || return 1
	mkdir -p "$STATE/postgres"
	if ((EUID == 0)); then
		# initdb refuses to run as root: run the private cluster as the postgres user.
		id postgres >/dev/null 2>&1 && have runuser || return 1
		chown postgres "$STATE/postgres"
		pg_as=(runuser -u postgres --)
	fi
}

start_private_postgres() {
	pg_private_setup || {
		say "no initdb/pg_ctl usable here for a private PostgreSQL"
		return 1
	}
	local dir=$STATE/postgres port
	if [[ -f $dir/port ]] && answers 127.0.0.1 "$(<"$dir/port")"; then
		port=$(<"$dir/port")
	else
		if [[ ! -f $dir/data/PG_VERSION ]]; then
			(cd "$dir" && "${pg_as[@]}" initdb -D "$dir/data" -U postgres --auth=trust) \
				>"$dir/initdb.log" 2>&1 || {
				say "initdb failed: see $dir/initdb.log"
				return 1
			}
		fi
		local tries=3
		# Another process can take the port between the check and the bind: try another.
		until port=$(free_port) && (cd "$dir" && "${pg_as[@]}" pg_ctl -D "$dir/data" \
			-l "$dir/postgres.log" -w -t 30 -o "-h 127.0.0.1 -p $port -k $dir" start) \
			>/dev/null 2>&1; do
			((--tries > 0)) || {
				say "private PostgreSQL did not start: see $dir/postgres.log"
				return 1
			}
		done
		echo "$port" >"$dir/port"
		# The database the URL names, so that psql "$TEST_DATABASE_URL" works too.
		createdb -h 127.0.0.1 -p "$port" -U postgres accesshive >/dev/null 2>&1 || true
	fi
	export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/accesshive"
	say "PostgreSQL: private instance at 127.0.0.1:$port (data in $dir/data)"
}

ensure_postgres() {
	local url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/accesshive} host port
	read -r host port < <(url_hostport "$url" 5432)
	if [[ $PRIVATE_ONLY != 1 ]] && answers "$host" "$port"; then
		export TEST_DATABASE_URL=$url
		say "PostgreSQL answers at $host:$port"
		return 0
	fi
	if [[ -n ${TEST_DATABASE_URL:-} ]]; then
		say "TEST_DATABASE_URL is set but nothing answers at $host:$port"
		return 1
	fi
	if [[ $PRIVATE_ONLY != 1 ]] && have pg_ctlcluster && [[ -d /etc/postgresql ]]; then
		local version
		for version in $(ls /etc/postgresql); do
			say "starting the machine's PostgreSQL $version cluster"
			pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
		done
		if wait_answers 127.0.0.1 5432 15; then
			export TEST_DATABASE_URL=$url
			say "PostgreSQL answers at 127.0.0.1:5432"
			return 0
		fi
	fi
	start_private_postgres
}

stop_private_postgres() {
	local dir=$STATE/postgres
	[[ -f $dir/data/postmaster.pid ]] || return 0
	pg_private_setup || return 0
	(cd "$dir" && "${pg_as[@]}" pg_ctl -D "$dir/data" -m fast -w stop) >/dev/null 2>&1 &&
		say "stopped the private PostgreSQL"
	rm -f "$dir/port"
}

# --- Redis --------------------------------------------------------------------------------

start_private_redis() {
	have redis-server || {
		say "no redis-server on PATH for a private Redis"
		return 1
	}
	local dir=$STATE/redis port
	mkdir -p "$dir"
	if [[ -f $dir/port ]] && answers 127.0.0.1 "$(<"$dir/port")"; then
		port=$(<"$dir/port")
	else
		port=$(free_port) || return 1
		redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
			--dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2 || return 1
		wait_answers 127.0.0.1 "$port" 10 || {
			say "private Redis did not start: see $dir/redis.log"
			return 1
		}
		echo "$port" >"$dir/port"
	fi
	export TEST_REDIS_URL="redis://127.0.0.1:$port/15"
	say "Redis: private instance at 127.0.0.1:$port"
}

ensure_redis() {
	local url=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} host port
	read -r host port < <(url_hostport "$url" 6379)
	if [[ $PRIVATE_ONLY != 1 ]] && answers "$host" "$port"; then
		export TEST_REDIS_URL=$url
		say "Redis answers at $host:$port"
		return 0
	fi
	if [[ -n ${TEST_REDIS_URL:-} ]]; then
		say "TEST_REDIS_URL is set but nothing answers at $host:$port"
		return 1
	fi
	if [[ $PRIVATE_ONLY != 1 ]] && have redis-server; then
		say "starting the machine's Redis on 127.0.0.1:6379"
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2 || true
		if wait_answers 127.0.0.1 6379 10; then
			export TEST_REDIS_URL=$url
			say "Redis answers at 127.0.0.1:6379"
			return 0
		fi
	fi
	start_private_redis
}

stop_private_redis() {
	local dir=$STATE/redis
	[[ -f $dir/redis.pid ]] || return 0
	kill "$(<"$dir/redis.pid")" 2>/dev/null && say "stopped the private Redis"
	rm -f "$dir/redis.pid" "$dir/port"
}

# --- main ---------------------------------------------------------------------------------

if [[ ${1:-} == stop ]]; then
	stop_private_postgres
	stop_private_redis
	exit 0
fi

missing=()
ensure_postgres || missing+=("PostgreSQL")
ensure_redis || missing+=("Redis")
if ((${#missing[@]})); then
	what="${missing[*]}"
	{
		echo
		echo "################################################################################"
		echo "##"
		echo "##  NOT AVAILABLE: ${what// / and }. The tests that need it will be SKIPPED"
		echo "##  (with CI=true they FAIL). Start it, or set TEST_DATABASE_URL / TEST_REDIS_URL."
		echo "##"
		echo "################################################################################"
		echo
	} >&2
fi

(($#)) || exit 0
exec "$@"
