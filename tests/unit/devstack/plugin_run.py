"""Running devstack/plugin.sh offline, and reading what it did.

harness.sh sources devstack/settings and devstack/plugin.sh with
DevStack's functions replaced by recorders; `run` prepares its scratch
directory and returns the record as a `Run`.
"""

import dataclasses
import pathlib
import shutil
import stat
import subprocess

TOP = pathlib.Path(__file__).resolve().parents[3]
DEVSTACK = TOP / "devstack"
HARNESS = pathlib.Path(__file__).with_name("harness.sh")

# What stack.sh, unstack.sh and clean.sh source the plugin with, in order.
PHASES = (
    "stack install",
    "stack post-config",
    "stack extra",
    "unstack",
    "clean",
)

# The defaults devstack/settings gives.
CONF = "/etc/snapmanager/snapmanager.conf"
CONF_DIR = "/etc/snapmanager"
UWSGI_CONF = "/etc/snapmanager/snapmanager-api-uwsgi.ini"

# ENABLED_SERVICES of a one-node DevStack, and of a node that only adds a
# hypervisor (DevStack's multinode guide).
ALL_IN_ONE = (
    "key,mysql,rabbit,g-api,n-api,n-cond,n-sch,n-novnc,n-cpu,"
    "placement-api,horizon"
)
COMPUTE_ONLY = "n-cpu,placement-client,c-vol"

# The executables the plugin runs by path, from Snapmanager's venv: they
# record their arguments like the harness's functions.
_RECORDER = (
    "#!/bin/bash\n"
    "IFS=$'\\x1f'\n"
    'printf \'%s\\x1f%s\\n\' "$PHASE" "$0${IFS}$*" >> "$CALLS"\n'
)
RECORDED_EXECUTABLES = ("oslo-config-generator", "snapmanager-manage")


@dataclasses.dataclass(frozen=True)
class Call:
    phase: str
    name: str
    args: tuple


@dataclasses.dataclass
class Run:
    work: pathlib.Path
    calls: list
    returncode: int
    stderr: str

    @property
    def bin_dir(self):
        return self.work / "bin"

    @property
    def state_path(self):
        return self.work / "opt" / "stack" / "data" / "snapmanager"

    @property
    def horizon_dir(self):
        """Horizon's openstack_dashboard/ (lib/horizon's HORIZON_DIR)."""
        return self.work / "opt" / "stack" / "horizon" / "openstack_dashboard"

    def named(self, name, phase=None):
        return [
            call
            for call in self.calls
            if call.name == name and phase in (None, call.phase)
        ]

    def position(self, name, *args):
        """Index of the first call of `name` whose arguments start with
        `args`."""
        for index, call in enumerate(self.calls):
            if call.name == name and call.args[: len(args)] == args:
                return index
        raise AssertionError("no call %s %s" % (name, args))

    def started(self):
        return [call.args[0] for call in self.named("run_process")]

    def enabled(self):
        (call,) = self.named("enabled")
        return call.args[0].split(",")

    def conf(self, path=CONF):
        """{(section, option): value} the iniset calls wrote to `path`."""
        return {
            (call.args[1], call.args[2]): call.args[3]
            for call in self.named("iniset")
            if call.args[0] == path
        }

    def sections(self, path=CONF):
        return {section for section, _ in self.conf(path)}


def run(tmp_path, services, *phases, **env):
    """Source settings, then plugin.sh with each phase (all by default).

    `env` adds to the harness's environment: DEVSTACK_PLUGINS (default
    `snapmanager`), SNAPMANAGER_DIR (default the source tree), ...
    """
    work = tmp_path / "work"
    (work / "bin").mkdir(parents=True)
    (work / "safebin").mkdir()
    # install_snapmanager writes its constraints there; its `mkdir` is
    # recorded, not run.
    (work / "opt" / "stack" / "data" / "snapmanager").mkdir(parents=True)
    (work / "safebin" / "grep").symlink_to(shutil.which("grep"))
    for name in RECORDED_EXECUTABLES:
        script = work / "bin" / name
        script.write_text(_RECORDER)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    calls_path = work / "calls"
    calls_path.touch()
    environ = {
        "PLUGIN_DIR": str(DEVSTACK),
        "WORK": str(work),
        "CALLS": str(calls_path),
        "ENABLED_SERVICES": services,
        "DEVSTACK_PLUGINS": "snapmanager",
        "SNAPMANAGER_DIR": str(TOP),
        "HOME": str(work),
    }
    environ.update(env)
    result = subprocess.run(
        ["/bin/bash", str(HARNESS), *(phases or PHASES)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=work,
    )
    calls = []
    for line in calls_path.read_text().splitlines():
        phase, name, *args = line.split("\x1f")
        calls.append(Call(phase, name, tuple(args)))
    return Run(work, calls, result.returncode, result.stderr)


def fake_tree(tmp_path, files):
    """A copy of the plugin's view of the source tree with extra files
    (relative path: text); the constraints stay the real ones."""
    tree = tmp_path / "tree"
    for relative, text in files.items():
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tree, {
        "SNAPMANAGER_DIR": str(tree),
        "SNAPMANAGER_CONSTRAINTS": str(TOP / "upper-constraints.txt"),
    }
