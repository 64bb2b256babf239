#!/bin/bash
# The globals below are read by the sourced plugin: SC2034 does not see it.
# shellcheck disable=SC2034,SC2123
# Runs devstack/settings and devstack/plugin.sh the way stack.sh,
# unstack.sh and clean.sh source them, with DevStack's globals set to
# fixed values and its functions replaced by recorders: nothing is
# installed, started or written outside $WORK. DevStack itself cannot be
# fetched here; test_plugin.py reads the record.
#
# Usage: harness.sh PHASE... (each PHASE is "stack install", "unstack", ...)
#
# Environment (set by test_plugin.py):
#   PLUGIN_DIR   the devstack/ directory under test
#   WORK         a scratch directory: $WORK/bin holds the recorders of the
#                executables the plugin runs by path, $WORK/safebin the
#                only real commands it may run (grep)
#   CALLS        the record: one line per call, "phase<US>name<US>arg...",
#                US being the ASCII unit separator
#   ENABLED_SERVICES, DEVSTACK_PLUGINS, LIBS_FROM_GIT, ENABLE_CEPH_NOVA,
#   DISABLED_SERVICES, NOVA_HOST (nova.conf's [DEFAULT] host, may be
#   empty), SNAPMANAGER_* (local.conf's), XTRACE (on: trace when the
#   plugin is sourced), WAIT_FOR_SERVICE_RC (what wait_for_service
#   returns)

# Anything not defined below is not run: command_not_found_handle records
# it. Real commands that would act on this machine (cp, rm, sudo, ...) are
# shadowed by recorders first.
PATH=$WORK/safebin
export PHASE=settings

function record {
    local IFS=$'\x1f'
    printf '%s\x1f%s\n' "$PHASE" "$*" >> "$CALLS"
}

function command_not_found_handle {
    record "$@"
    return 0
}

# DevStack's globals (stackrc, lib/*), fixed values.
DEST=$WORK/opt/stack
DATA_DIR=$DEST/data
HORIZON_DIR=$DEST/horizon
STACK_USER=stack
SERVICE_HOST=192.0.2.10
HOST_IP=192.0.2.10
SERVICE_LISTEN_ADDRESS=0.0.0.0
SERVICE_PROTOCOL=http
SERVICE_TIMEOUT=60
KEYSTONE_SERVICE_URI=http://192.0.2.10/identity
SERVICE_PASSWORD="service-secret"
SERVICE_PROJECT_NAME=service
SERVICE_DOMAIN_NAME=Default
REGION_NAME=RegionOne
ENABLE_DEBUG_LOG_LEVEL=True
LIBVIRT_GROUP=libvirt
NOVA_CONF=/etc/nova/nova.conf
NOVA_INSTANCES_PATH=$DATA_DIR/nova/instances
DISABLED_SERVICES=${DISABLED_SERVICES:-}

# DevStack's functions that answer questions: the same answers DevStack
# gives, for the comma-separated lists it keeps.
function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
            return 0
        fi
    done
    return 1
}

function is_plugin_enabled {
    [[ ",$DEVSTACK_PLUGINS," == *",$1,"* ]]
}

function enable_service {
    record enable_service "$@"
    local service
    for service in "$@"; do
        if [[ ",$DISABLED_SERVICES," == *",$service,"* ]]; then
            continue
        fi
        if ! is_service_enabled "$service"; then
            ENABLED_SERVICES+=",$service"
        fi
    done
}

function disable_service {
    record disable_service "$@"
    local service list
    for service in "$@"; do
        DISABLED_SERVICES+=",$service"
        list=",$ENABLED_SERVICES,"
        list=${list//,$service,/,}
        list=${list#,}
        ENABLED_SERVICES=${list%,}
    done
}

function get_python_exec_prefix {
    echo "$WORK/bin"
}

function iniget {
    record iniget "$@"
    if [[ "$1" == "$NOVA_CONF" && "$2" == DEFAULT && "$3" == host ]]; then
        echo "$NOVA_HOST"
    fi
}

function hostname {
    record hostname "$@"
    echo harness-node
}

function which {
    echo "/usr/local/bin/$1"
}

function database_connection_url {
    record database_connection_url "$@"
    echo "mysql+pymysql://root:db-secret@192.0.2.10/$1?charset=utf8"
}

function get_transport_url {
    echo "rabbit://stackrabbit:rabbit-secret@192.0.2.10:5672/$1"
}

function get_notification_url {
    record get_notification_url "$@"
    get_transport_url "$@"
}

function get_or_create_service {
    record get_or_create_service "$@"
    echo service-id-0001
}

function get_or_create_endpoint {
    record get_or_create_endpoint "$@"
    echo endpoint-id-0001
}

function wait_for_service {
    record wait_for_service "$@"
    return "${WAIT_FOR_SERVICE_RC:-0}"
}

function die {
    record die "$@"
    exit 1
}

# DevStack's functions (and the real commands) that act: recorded only.
for _recorded in iniset iniset_rpc_backend configure_keystone_authtoken_middleware \
    create_service_user recreate_database pip_install write_uwsgi_config \
    run_process stop_process echo_summary cp rm mkdir install sudo ln chown; do
    eval "function $_recorded { record $_recorded \"\$@\"; }"
done
unset _recorded

# The trace setting the plugin must leave as it found it.
if [[ "$XTRACE" == on ]]; then
    set -o xtrace
else
    set +o xtrace
fi
# shellcheck source=/dev/null
source "$PLUGIN_DIR/settings"
for PHASE in "$@"; do
    record phase "$PHASE"
    # shellcheck disable=SC2086,SC1091
    source "$PLUGIN_DIR/plugin.sh" $PHASE
    if [[ $- == *x* ]]; then
        record xtrace on
    else
        record xtrace off
    fi
done
PHASE=end
record enabled "$ENABLED_SERVICES"
