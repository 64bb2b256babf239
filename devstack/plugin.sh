#!/bin/bash
# DevStack plugin of Snapmanager: `enable_plugin snapmanager <repository>`
# in local.conf. Its variables are in devstack/settings; the install guide
# is doc/source/install/.
#
# stack.sh, unstack.sh and clean.sh source this file with the phase as
# arguments; each service's steps per phase are:
#
# snapmanager-api (uwsgi) and snapmanager-conductor, where n-api runs
#   stack install      install_snapmanager
#   stack post-config  configure_snapmanager, create_snapmanager_accounts,
#                      install_snapmanager_dashboard (if horizon is enabled)
#   stack extra        init_snapmanager, start_snapmanager
#   unstack            stop_snapmanager
#   clean              cleanup_snapmanager
#
# snapmanager-compute, on every node that runs n-cpu
#   stack install      install_snapmanager
#   stack post-config  configure_snapmanager
#   stack extra        start_snapmanager
#   unstack            stop_snapmanager
#   clean              cleanup_snapmanager

# Save trace setting
_XTRACE_SNAPMANAGER=$(set +o | grep xtrace)
set -o xtrace


# Helpers
# -------

# is_snapmanager_controller() - whether the API or the conductor runs here
# (they own the database, Keystone's entries and Nova's credentials)
function is_snapmanager_controller {
    is_service_enabled snapmanager-api snapmanager-conductor
}

# is_snapmanager_agent() - whether the compute agent runs here: only beside
# nova-compute
function is_snapmanager_agent {
    is_service_enabled n-cpu && is_service_enabled snapmanager-compute
}

# is_snapmanager_rbd() - whether devstack-plugin-ceph puts Nova's disks on
# Ceph RBD
function is_snapmanager_rbd {
    is_plugin_enabled devstack-plugin-ceph && [[ "$ENABLE_CEPH_NOVA" == "True" ]]
}

# write_snapmanager_constraints() - the constraints the install passes: the
# project's upper-constraints.txt without the packages DevStack installed
# from source (Horizon, LIBS_FROM_GIT), as DevStack drops them from its
# own, so that pip keeps DevStack's checkouts. Names are compared as pip
# does: lower case, "-" for "." and "_".
function write_snapmanager_constraints {
    local out=$1
    local skip=${LIBS_FROM_GIT,,}
    skip=",${skip//[._]/-},"
    if is_service_enabled horizon; then
        skip+="horizon,"
    fi
    local line name
    : > "$out"
    while IFS= read -r line || [[ -n "$line" ]]; do
        name=${line%%[=<>!~;\[ ]*}
        name=${name,,}
        name=${name//[._]/-}
        if [[ -n "$name" && "$skip" == *",$name,"* ]]; then
            continue
        fi
        printf '%s\n' "$line" >> "$out"
    done < "$SNAPMANAGER_CONSTRAINTS"
}

# list_snapmanager_dashboard_files() - the Horizon plugin's files a Horizon
# installation takes, each with the directory it goes to (tab-separated):
# its enabled files, its settings snippet and its policy overrides file.
# Only those that exist: never a package's __init__.py, which would replace
# Horizon's own.
function list_snapmanager_dashboard_files {
    local source=$SNAPMANAGER_DIR/snapmanager_dashboard
    local file target
    for file in "$source"/local/enabled/_*.py \
        "$source"/local/local_settings.d/_*.py \
        "$source"/conf/snapmanager_policy.yaml; do
        case "${file#"$source"/}" in
            local/enabled/*) target=$SNAPMANAGER_HORIZON_ENABLED_DIR ;;
            local/local_settings.d/*) target=$SNAPMANAGER_HORIZON_SETTINGS_DIR ;;
            *) target=$SNAPMANAGER_HORIZON_POLICY_DIR ;;
        esac
        if [[ -f "$file" && "${file##*/}" != __* ]]; then
            printf '%s\t%s\n' "$file" "$target"
        fi
    done
}

# get_snapmanager_host() - the host name nova-compute reports: its
# [DEFAULT] host, else the machine's name (as DevStack's wait_for_compute)
function get_snapmanager_host {
    local host
    host=$(iniget "$NOVA_CONF" DEFAULT host)
    if [[ -z "$host" ]]; then
        host=$(hostname)
    fi
    echo "$host"
}


# Steps
# -----

# install_snapmanager() - Snapmanager with its OSC plugin, and the Horizon
# plugin's dependencies where Horizon runs
function install_snapmanager {
    local constraints=$SNAPMANAGER_STATE_PATH/upper-constraints.txt
    mkdir -p "$SNAPMANAGER_STATE_PATH"
    write_snapmanager_constraints "$constraints"
    local target=$SNAPMANAGER_DIR
    if is_service_enabled horizon; then
        target+="[dashboard]"
    fi
    # pip_install adds DevStack's own constraints: both sets apply.
    pip_install -c "$constraints" -e "$target"
}

# configure_snapmanager() - snapmanager.conf, and the API's uwsgi config
function configure_snapmanager {
    sudo install -d -o "$STACK_USER" "$SNAPMANAGER_CONF_DIR"
    mkdir -p "$SNAPMANAGER_STATE_PATH"
    rm -f "$SNAPMANAGER_CONF"
    "$SNAPMANAGER_BIN_DIR/oslo-config-generator" \
        --namespace snapmanager \
        --namespace keystonemiddleware.auth_token \
        --namespace oslo.messaging \
        --namespace oslo.log \
        --output-file "$SNAPMANAGER_CONF"

    # The options tools/quickstart/stack.py's Stack._render sets (keep the
    # two in step), with DevStack's values. Not its report_interval,
    # [conductor] tick_interval and notification_pool, nor its
    # [quota] min_schedule_interval: they speed up and isolate the
    # quickstart's stack and its demo, and the defaults suit DevStack.
    local conf=$SNAPMANAGER_CONF
    iniset "$conf" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
    iniset "$conf" DEFAULT state_path "$SNAPMANAGER_STATE_PATH"
    # The agent's RPC server is named after it: it must be nova-compute's.
    iniset "$conf" DEFAULT host "$(get_snapmanager_host)"
    iniset_rpc_backend snapmanager "$conf" DEFAULT

    if is_snapmanager_controller; then
        iniset "$conf" database connection "$(database_connection_url "$SNAPMANAGER_DB_NAME")"
        iniset "$conf" api bind_host "$SNAPMANAGER_SERVICE_LISTEN_ADDRESS"
        iniset "$conf" api bind_port "$SNAPMANAGER_SERVICE_PORT"
        iniset "$conf" api auth_strategy keystone
        configure_keystone_authtoken_middleware "$conf" "$SNAPMANAGER_SERVICE_USER"
        iniset "$conf" nova auth_type password
        iniset "$conf" nova auth_url "$KEYSTONE_SERVICE_URI"
        iniset "$conf" nova username "$SNAPMANAGER_SERVICE_USER"
        iniset "$conf" nova password "$SERVICE_PASSWORD"
        iniset "$conf" nova user_domain_name "$SERVICE_DOMAIN_NAME"
        iniset "$conf" nova project_name "$SERVICE_PROJECT_NAME"
        iniset "$conf" nova project_domain_name "$SERVICE_DOMAIN_NAME"
        iniset "$conf" nova region_name "$REGION_NAME"
        # Where lib/nova sends Nova's notifications.
        iniset "$conf" nova notification_transport_url "$(get_notification_url)"
    fi

    if is_snapmanager_agent; then
        iniset "$conf" compute instances_path "$SNAPMANAGER_INSTANCES_PATH"
        iniset "$conf" compute libvirt_uri "$SNAPMANAGER_LIBVIRT_URI"
        if is_snapmanager_rbd; then
            iniset "$conf" compute backends file,rbd
            iniset "$conf" rbd ceph_conf "$SNAPMANAGER_RBD_CEPH_CONF"
            iniset "$conf" rbd rbd_user "$SNAPMANAGER_RBD_USER"
            iniset "$conf" rbd pool "$SNAPMANAGER_RBD_POOL"
        else
            iniset "$conf" compute backends file
        fi
    fi

    if is_service_enabled snapmanager-api; then
        write_uwsgi_config "$SNAPMANAGER_UWSGI_CONF" "$SNAPMANAGER_UWSGI" "" \
            "$SNAPMANAGER_SERVICE_LISTEN_ADDRESS:$SNAPMANAGER_SERVICE_PORT" \
            snapmanager-api
        # The WSGI module reads its config files from here
        # (snapmanager_nova/wsgi/api.py).
        iniset "$SNAPMANAGER_UWSGI_CONF" uwsgi env \
            "SNAPMANAGER_CONFIG_FILES=$SNAPMANAGER_CONF"
    fi
}

# create_snapmanager_accounts() - the service user and the catalog entry
#
# Project   User         Roles
# ----------------------------------------
# service   snapmanager  service, admin
function create_snapmanager_accounts {
    create_service_user "$SNAPMANAGER_SERVICE_USER" admin

    local service_id url
    service_id=$(get_or_create_service "$SNAPMANAGER_SERVICE_NAME" \
        "$SNAPMANAGER_SERVICE_TYPE" \
        "Scheduled, restorable snapshots of Nova servers")
    url="$SNAPMANAGER_SERVICE_PROTOCOL://$SNAPMANAGER_SERVICE_HOST:$SNAPMANAGER_SERVICE_PORT"
    # Public and internal, the same URL, as the quickstart registers it.
    get_or_create_endpoint "$service_id" "$REGION_NAME" "$url" "" "$url"
}

# install_snapmanager_dashboard() - the Horizon plugin's files into Horizon,
# in post-config: Horizon collects its static files after this phase
function install_snapmanager_dashboard {
    local file target
    while IFS=$'\t' read -r file target; do
        cp "$file" "$target/"
    done < <(list_snapmanager_dashboard_files)
}

# init_snapmanager() - a new database with the current schema
function init_snapmanager {
    recreate_database "$SNAPMANAGER_DB_NAME"
    "$SNAPMANAGER_BIN_DIR/snapmanager-manage" --config-file "$SNAPMANAGER_CONF" \
        db sync
}

# start_snapmanager() - the conductor, the agent, then the API, as the
# quickstart starts them: the agent's heartbeat goes through the conductor
function start_snapmanager {
    if is_service_enabled snapmanager-conductor; then
        run_process snapmanager-conductor \
            "$SNAPMANAGER_BIN_DIR/snapmanager-conductor --config-file $SNAPMANAGER_CONF"
    fi
    if is_snapmanager_agent; then
        # In libvirt's group, as nova-compute.
        run_process snapmanager-compute \
            "$SNAPMANAGER_BIN_DIR/snapmanager-compute --config-file $SNAPMANAGER_CONF" \
            "$LIBVIRT_GROUP"
    fi
    if is_service_enabled snapmanager-api; then
        run_process snapmanager-api \
            "$(which uwsgi) --procname-prefix snapmanager-api --ini $SNAPMANAGER_UWSGI_CONF"
        local url
        url="$SNAPMANAGER_SERVICE_PROTOCOL://$SNAPMANAGER_SERVICE_HOST:$SNAPMANAGER_SERVICE_PORT/"
        echo "Waiting for snapmanager-api on $url"
        if ! wait_for_service "$SERVICE_TIMEOUT" "$url"; then
            die $LINENO "snapmanager-api did not answer on $url"
        fi
    fi
}

# stop_snapmanager() - the services, in the reverse order
function stop_snapmanager {
    local service
    for service in snapmanager-api snapmanager-compute snapmanager-conductor; do
        stop_process "$service"
    done
}

# cleanup_snapmanager() - the configuration, the state (file-backed
# snapshots included) and the Horizon plugin's files in Horizon
function cleanup_snapmanager {
    sudo rm -rf "$SNAPMANAGER_CONF_DIR"
    rm -rf "$SNAPMANAGER_STATE_PATH"
    if ! is_service_enabled horizon; then
        return
    fi
    local file target
    while IFS=$'\t' read -r file target; do
        rm -f "$target/${file##*/}"
    done < <(list_snapmanager_dashboard_files)
}


# Dispatcher
# ----------

if is_service_enabled snapmanager-api snapmanager-conductor snapmanager-compute; then
    case "$1 $2" in
        "stack install")
            echo_summary "Installing Snapmanager"
            install_snapmanager
            ;;
        "stack post-config")
            echo_summary "Configuring Snapmanager"
            configure_snapmanager
            if is_service_enabled key && is_service_enabled snapmanager-api; then
                create_snapmanager_accounts
            fi
            if is_service_enabled horizon; then
                install_snapmanager_dashboard
            fi
            ;;
        "stack extra")
            if is_snapmanager_controller; then
                init_snapmanager
            fi
            echo_summary "Starting Snapmanager"
            start_snapmanager
            ;;
        "unstack "*)
            stop_snapmanager
            ;;
        "clean "*)
            cleanup_snapmanager
            ;;
    esac
fi

# Restore xtrace
$_XTRACE_SNAPMANAGER
