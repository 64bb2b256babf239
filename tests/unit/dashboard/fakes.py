"""Test data for the dashboard's tests: a catalog with Snapmanager in it,
and the API's JSON for policies, snapshots and operations."""

import copy

SERVER_ID = "1fa2c4b8-0c44-4c1b-a1f6-25a7e3b5d0a1"
SNAPSHOT_ID = "7d2a5c1e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
OPERATION_ID = "c0de0000-1111-2222-3333-444455556666"
SCHEDULE_ID = "1c4e0000-aaaa-bbbb-cccc-ddddeeeeffff"
PUBLIC_URL = "http://public.snapmanager.example.com:8799"


def catalog_with_snapmanager(catalog, public_url=PUBLIC_URL):
    """``catalog`` (Horizon's test catalog) plus a ``snapmanager`` service
    with an endpoint per interface in RegionOne and one in RegionTwo."""
    catalog = copy.deepcopy(catalog)
    catalog.append(
        {
            "type": "snapmanager",
            "name": "snapmanager",
            "endpoints_links": [],
            "endpoints": [
                {
                    "region": "RegionOne",
                    "interface": "public",
                    "url": public_url,
                },
                {
                    "region": "RegionOne",
                    "interface": "internal",
                    "url": "http://int.snapmanager.example.com:8799",
                },
                {
                    "region": "RegionOne",
                    "interface": "admin",
                    "url": "http://admin.snapmanager.example.com:8799",
                },
                {
                    "region": "RegionTwo",
                    "interface": "public",
                    "url": "http://two.snapmanager.example.com:8799",
                },
            ],
        }
    )
    return catalog


def schedule(**overrides):
    value = {
        "id": SCHEDULE_ID,
        "spec": "daily@02:30",
        "family": "daily",
        "timezone": "Europe/Berlin",
        "retention": {"keep_count": 7},
        "enabled": True,
        "next_run_at": "2026-03-29T00:30:00Z",
        "last_run_at": None,
        "created_at": "2026-03-28T12:00:00Z",
        "updated_at": None,
    }
    value.update(overrides)
    return value


def policy(server_id=SERVER_ID, project_id="1", schedules=None, **overrides):
    value = {
        "server_id": server_id,
        "project_id": project_id,
        "keep_after_delete": False,
        "uses_project_default": False,
        "schedules": [schedule()] if schedules is None else schedules,
    }
    value.update(overrides)
    return value


def snapshot(**overrides):
    value = {
        "id": SNAPSHOT_ID,
        "server_id": SERVER_ID,
        "project_id": "1",
        "schedule_id": SCHEDULE_ID,
        "status": "available",
        "window_start": "2026-03-29T00:30:00Z",
        "backend": "file",
        "disks": [{"target": "vda", "size": 1048576}],
        "size_bytes": 1048576,
        "quiesced": False,
        "error": None,
        "created_at": "2026-03-29T00:30:01Z",
        "updated_at": None,
        "completed_at": "2026-03-29T00:30:02Z",
        "expires_at": None,
        "deleted_at": None,
    }
    value.update(overrides)
    return value


def operation(**overrides):
    value = {
        "id": OPERATION_ID,
        "type": "restore",
        "server_id": SERVER_ID,
        "snapshot_id": SNAPSHOT_ID,
        "project_id": "1",
        "state": "running",
        "progress": 40,
        "step": "restoring disks",
        "error": None,
        "created_at": "2026-03-29T08:00:00Z",
        "updated_at": "2026-03-29T08:00:05Z",
        "finished_at": None,
    }
    value.update(overrides)
    return value
