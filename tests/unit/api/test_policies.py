"""The API's routes and its policy rules describe the same surface."""

import pathlib
import subprocess
import sys

from snapmanager_nova import policies
from snapmanager_nova.api import router
from snapmanager_nova.api.schemas import snapshot as snapshot_schemas
from snapmanager_nova.compute import guest

ROOT = pathlib.Path(__file__).parents[3]
SAMPLE = ROOT / "etc" / "snapmanager" / "policy.yaml.sample"


def _documented_operations():
    operations = set()
    for rule in policies.list_rules():
        for operation in getattr(rule, "operations", []):
            # "/v1/snapshots/{id}/action (restore)" and "...?all_projects=1"
            # name a variant of a route; the route is what is before.
            path = operation["path"].split(" ")[0].split("?")[0]
            operations.add((operation["method"], path))
    return operations


def test_every_v1_route_has_a_documented_rule():
    routes = {(method, path) for method, path, *_ in router.V1_ROUTES}
    assert routes == _documented_operations()


def test_policy_sample_is_current(tmp_path):
    out = tmp_path / "policy.yaml.sample"
    subprocess.run(
        [
            str(
                pathlib.Path(sys.executable).parent
                / "oslopolicy-sample-generator"
            ),
            "--namespace",
            "snapmanager",
            "--output-file",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert out.read_text() == SAMPLE.read_text(), (
        "etc/snapmanager/policy.yaml.sample is stale: regenerate it with "
        "`oslopolicy-sample-generator --namespace snapmanager "
        "--output-file etc/snapmanager/policy.yaml.sample`"
    )


def test_quiesce_policies_match_the_agents():
    assert snapshot_schemas.QUIESCE_POLICIES == guest.QUIESCE_POLICIES
    assert snapshot_schemas.DEFAULT_QUIESCE == guest.QUIESCE_PREFER
