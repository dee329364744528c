# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the storage tests (sourced by .ci/run).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/hpsearch-pg.XXXXXX)
pg_port=${HPSEARCH_PG_PORT:-55432}
chown postgres "$pg_dir"
su postgres -c "$pg_bin/initdb -D $pg_dir/data -A trust -U postgres" >/dev/null
su postgres -c "$pg_bin/pg_ctl -D $pg_dir/data -l $pg_dir/log -o '-k $pg_dir -c listen_addresses=127.0.0.1 -p $pg_port -c max_connections=200' -w start" >/dev/null
trap 'su postgres -c "$pg_bin/pg_ctl -D $pg_dir/data -m fast stop" >/dev/null 2>&1 || true' EXIT
export HPSEARCH_TEST_POSTGRES="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
