"""Snapshot policies an operator declares in ``[conductor] policy_file``.

The file is YAML (example: ``etc/snapmanager/snap_sched.yaml.sample``;
format, precedence and reasons: ``doc/source/policy_file.rst``)::

    default:                  # every server without a policy of its own
      - "7@0"
    projects:
      <project id>:           # that project's servers, instead of default
        - "6@mon-fri@7,19"
    servers:
      <server name or UUID>:  # that server
        - spec: "24@0,6,12,18"
          timezone: Europe/Berlin
          retention: {max_age: 7d}

A schedule is a spec string or a mapping with the keys a schedule has in
the REST API (``spec``, ``timezone``, ``retention``, ``enabled``), and
is validated by the same code, so the file and the API accept and refuse
the same things.

Parsing (:func:`parse`), resolving entries to owners (:func:`resolve`)
and the precedence rule (:func:`deciding_level`) are pure.
:class:`PolicyFileSync` is the periodic task: it reloads the file when it
changed (its stat, then its SHA-256), keeps the last good policy in force
when a new version is refused, and makes the schedules of source
``operator`` exactly what the policy says -- one transaction, serialized
between conductors by a row lock, touching only the owners whose
schedules differ and never a schedule of source ``api``.
"""

import collections
import dataclasses
import hashlib
import os
import uuid as uuid_lib

import yaml
from oslo_log import log as logging
from oslo_utils import uuidutils

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.api import schedule_requests
from snapmanager_nova.api import validation
from snapmanager_nova.api.schemas import snapshot_policy as api_schemas
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# The sync_markers row whose lock serializes conductors applying the file
# (its value: when the operator policies were last applied).
MARKER_NAME = "operator-policy"

SERVER = "server"
PROJECT = "project"

# The precedence levels, most specific first (see deciding_level).
SERVER_TENANT = "server, tenant"
SERVER_OPERATOR = "server, operator"
PROJECT_TENANT = "project, tenant"
PROJECT_OPERATOR = "project, operator"
LEVELS = (SERVER_TENANT, SERVER_OPERATOR, PROJECT_TENANT, PROJECT_OPERATOR)

_SCHEDULES = {
    "type": "array",
    "items": api_schemas.SCHEDULE,
    # An empty list would read like "no snapshots for this one", which
    # is not what it would do (see doc/source/policy_file.rst).
    "minItems": 1,
    "maxItems": api_schemas.MAX_SCHEDULES,
}
_OWNERS = {
    "type": "object",
    "additionalProperties": _SCHEDULES,
    "propertyNames": {"minLength": 1, "maxLength": 255},
}
FILE_SCHEMA = {
    "type": "object",
    "properties": {
        "default": _SCHEDULES,
        "projects": _OWNERS,
        "servers": _OWNERS,
    },
    "additionalProperties": False,
}


class PolicyFileError(Exception):
    """The file is refused; ``where`` is the entry and field at fault."""

    def __init__(self, where, message):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class OperatorPolicy:
    """A parsed file: :class:`schedule_requests.RequestedSchedule` tuples
    for the general default and per project id and per server key."""

    default: tuple = ()
    projects: dict = dataclasses.field(default_factory=dict)
    servers: dict = dataclasses.field(default_factory=dict)

    def describe(self):
        return (
            f"{len(self.servers)} server entries, {len(self.projects)} "
            f"project entries, "
            f"{'a' if self.default else 'no'} general default"
        )


EMPTY = OperatorPolicy()


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping
    (PyYAML would quietly keep the last, hiding a copy-paste slip)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                duplicate = False  # unhashable: refused later as not a string
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text):
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            f"line {mark.line + 1}, column {mark.column + 1}"
            if mark is not None
            else "(file)"
        )
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyFileError(where, f"not valid YAML: {problem}") from None


def _path(*parts):
    return validation.field_path("(file)", parts)


def _normalize(document):
    """Spec strings as ``{"spec": ...}``; keys checked to be strings."""
    if not isinstance(document, dict):
        return document
    _check_keys(document, "(file)")
    document = dict(document)
    if isinstance(document.get("default"), list):
        document["default"] = _schedule_items(document["default"])
    for section in ("projects", "servers"):
        owners = document.get(section)
        if not isinstance(owners, dict):
            continue
        _check_keys(owners, section)
        document[section] = {
            key: _schedule_items(value) if isinstance(value, list) else value
            for key, value in owners.items()
        }
    return document


def _check_keys(mapping, where):
    for key in mapping:
        if not isinstance(key, str):
            raise PolicyFileError(
                where, f"key {key!r} is not a string; quote it in the file"
            )


def _schedule_items(items):
    return [
        {"spec": item} if isinstance(item, str) else item for item in items
    ]


def _schedules(entries, where):
    try:
        return tuple(schedule_requests.parse(entries))
    except exception.InvalidField as exc:
        # "schedules[1].retention.max_age" -> "<where>[1].retention..."
        # (the API's names for the list, in the field and the reason).
        field = exc.kwargs["field"]
        raise PolicyFileError(
            where + field[len("schedules") :],
            exc.kwargs["reason"].replace("schedules[", f"{where}["),
        ) from None


def parse(text):
    """Parse and validate a policy file's text.

    :returns: an :class:`OperatorPolicy`.
    :raises PolicyFileError: naming the entry and field at fault.
    """
    document = _normalize(_load_yaml(text))
    if document is None:
        return EMPTY  # an empty file: no operator policies
    try:
        validation.validate(FILE_SCHEMA, document, root="(file)", noun="key")
    except exception.InvalidField as exc:
        raise PolicyFileError(
            exc.kwargs["field"], exc.kwargs["reason"]
        ) from None
    servers = {}
    for key, entries in document.get("servers", {}).items():
        schedules = _schedules(entries, _path("servers", key))
        if uuidutils.is_uuid_like(key):
            canonical = str(uuid_lib.UUID(key))
            if canonical in servers:
                raise PolicyFileError(
                    _path("servers", key), f"server {canonical} is given twice"
                )
            key = canonical
        servers[key] = schedules
    return OperatorPolicy(
        default=(
            _schedules(document["default"], "default")
            if "default" in document
            else ()
        ),
        projects={
            key: _schedules(entries, _path("projects", key))
            for key, entries in document.get("projects", {}).items()
        },
        servers=servers,
    )


def deciding_level(
    snapshot_enabled,
    tenant_own,
    operator_own,
    tenant_default,
    operator_default,
):
    """Which level's schedules snapshot an instance, or None.

    The arguments say whether each level has an enabled schedule for the
    instance: its own schedules set through the API (``tenant_own``) or
    in the file (``operator_own``), its project's default set through
    the API (``tenant_default``) or in the file (``operator_default``:
    a project entry, or the general default). ``snapshot_enabled`` is
    the tenant's switch, which their own policy and default need.

    The most specific level wins; at the same level, the tenant's own
    choice wins over the operator's. Reasons: doc/source/policy_file.rst.
    """
    if snapshot_enabled and tenant_own:
        return SERVER_TENANT
    if operator_own:
        return SERVER_OPERATOR
    if snapshot_enabled and tenant_default:
        return PROJECT_TENANT
    if operator_default:
        return PROJECT_OPERATOR
    return None


def resolve(policy, server_uuids, servers_by_name, project_ids):
    """Which owners get which operator schedules.

    :param server_uuids: the live instances among the policy's UUID keys.
    :param servers_by_name: name -> uuids of the live instances with a
        name among the policy's name keys.
    :param project_ids: the projects with live instances.
    :returns: ``({(SERVER, uuid) | (PROJECT, id): schedules}, problems)``
        where the problems are entries that name no server, or several.
    """
    desired = {}
    problems = []
    by_uuid = {k: v for k, v in policy.servers.items() if _is_uuid(k)}
    by_name = {k: v for k, v in policy.servers.items() if not _is_uuid(k)}
    for key, schedules in sorted(by_uuid.items()):
        if key in server_uuids:
            desired[(SERVER, key)] = schedules
        else:
            problems.append(
                f"{_path('servers', key)}: no server with this UUID is "
                "known to Snapmanager"
            )
    for name, schedules in sorted(by_name.items()):
        matches = sorted(servers_by_name.get(name, ()))
        where = _path("servers", name)
        if not matches:
            problems.append(f"{where}: no server of this name is known")
        elif len(matches) > 1:
            problems.append(
                f"{where}: {len(matches)} servers have this name "
                f"({', '.join(matches)}); name one by its UUID"
            )
        elif (SERVER, matches[0]) in desired:
            problems.append(
                f"{where}: server {matches[0]} has an entry by its UUID, "
                "which is used"
            )
        else:
            desired[(SERVER, matches[0])] = schedules
    for project_id, schedules in policy.projects.items():
        desired[(PROJECT, project_id)] = schedules
    if policy.default:
        for project_id in project_ids:
            desired.setdefault((PROJECT, project_id), policy.default)
    return desired, problems


def _is_uuid(key):
    return uuidutils.is_uuid_like(key)


def owner_of(schedule):
    if schedule.instance_uuid is not None:
        return (SERVER, schedule.instance_uuid)
    return (PROJECT, schedule.project_id)


def _owner_values(owner):
    kind, key = owner
    values = {"source": models.SCHEDULE_SOURCE_OPERATOR}
    if kind == SERVER:
        values["instance_uuid"] = key
    else:
        values.update(project_id=key, is_project_default=True)
    return values


def _retention_key(retention):
    return tuple(sorted((retention or {}).items()))


def same_schedules(rows, wanted):
    """Whether schedule ``rows`` already are what ``wanted`` asks for."""
    have = sorted(
        (row.spec, row.timezone, _retention_key(row.retention), row.enabled)
        for row in rows
    )
    want = sorted(
        (
            item.spec.text,
            item.spec.timezone,
            _retention_key(item.retention),
            item.enabled,
        )
        for item in wanted
    )
    return have == want


class PolicyFileSync:
    """The periodic task keeping the operator's schedules as the file says."""

    def __init__(self, now=models.utcnow):
        self.now = now
        self._signature = None
        self._digest = None
        self._policy = None  # the last good one
        self._problems = ()

    def run(self, context):
        """Reload the file if it changed and apply the policy in force.

        Returns the owners whose schedules were rewritten, or None when
        no policy was ever loaded (a refused or unreadable file at
        start: the operator schedules already in the database stay).
        """
        policy = self.load()
        if policy is None:
            return None
        return self.apply(context, policy)

    def load(self):
        """The policy in force: the file's, or the last good one."""
        path = CONF.conductor.policy_file
        if not path:
            if self._signature != ():
                LOG.info("No [conductor] policy_file: no operator policies")
                self._signature = ()
            self._policy = EMPTY
            return EMPTY
        try:
            stat = os.stat(path)
            signature = (path, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if signature == self._signature:
                return self._policy
            with open(path, "rb") as source:
                data = source.read()
        except OSError as exc:
            if self._signature != ("unreadable", path):
                LOG.error(
                    "Policy file %s cannot be read (%s); %s",
                    path,
                    exc,
                    self._still_in_force(),
                )
                self._signature = ("unreadable", path)
            return self._policy
        self._signature = signature
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return self._policy
        self._digest = digest
        try:
            policy = parse(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            LOG.error(
                "Policy file %s is not UTF-8 (%s); %s",
                path,
                exc,
                self._still_in_force(),
            )
            return self._policy
        except PolicyFileError as exc:
            LOG.error(
                "Policy file %s refused: %s; %s",
                path,
                exc,
                self._still_in_force(),
            )
            return self._policy
        LOG.info("Policy file %s loaded: %s", path, policy.describe())
        self._policy = policy
        return policy

    def _still_in_force(self):
        if self._policy is None:
            return "the operator schedules in the database stay as they are"
        return "the previous policy stays in force"

    def apply(self, context, policy):
        """Make the ``operator`` schedules what ``policy`` says."""
        now = self.now()
        uuid_keys = [key for key in policy.servers if _is_uuid(key)]
        name_keys = [key for key in policy.servers if not _is_uuid(key)]
        changed = []
        with db_api.context_manager.writer.using(context):
            # Taken first and held to the commit: conductors apply the
            # file one at a time, each seeing the previous one's rows.
            db_api.sync_marker_set(context, MARKER_NAME, now)
            server_uuids = {
                row.uuid
                for row in db_api.instance_list_by_uuids(context, uuid_keys)
                if row.deleted_at is None
            }
            servers_by_name = collections.defaultdict(list)
            for row in db_api.instance_list_by_names(context, name_keys):
                servers_by_name[row.name].append(row.uuid)
            project_ids = (
                db_api.instance_project_ids(context) if policy.default else ()
            )
            desired, problems = resolve(
                policy, server_uuids, servers_by_name, project_ids
            )
            existing = collections.defaultdict(list)
            for row in db_api.schedule_list_by_source(
                context, models.SCHEDULE_SOURCE_OPERATOR
            ):
                existing[owner_of(row)].append(row)
            for owner in sorted(set(desired) | set(existing)):
                wanted = desired.get(owner, ())
                if same_schedules(existing.get(owner, ()), wanted):
                    continue
                schedule_requests.replace(
                    context,
                    existing.get(owner, []),
                    list(wanted),
                    _owner_values(owner),
                    now,
                )
                changed.append(owner)
        self._report(problems)
        if changed:
            LOG.info(
                "Operator policies applied: schedules of %s rewritten",
                ", ".join(f"{kind} {key}" for kind, key in changed),
            )
        return changed

    def _report(self, problems):
        # Logged when they change, not on every pass.
        problems = tuple(problems)
        if problems != self._problems:
            for problem in problems:
                LOG.warning("Policy file entry not applied: %s", problem)
            self._problems = problems
