"""The checked-in sample config must match what the code registers."""

import pathlib

from oslo_config import generator

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.conf import opts

SAMPLE = (
    pathlib.Path(__file__).parents[2]
    / "etc"
    / "snapmanager"
    / "snapmanager.conf.sample"
)


def test_sample_config_is_current(tmp_path):
    out = tmp_path / "snapmanager.conf.sample"
    conf = generator.cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(["--namespace", "snapmanager", "--output-file", str(out)])
    generator.generate(conf)
    assert out.read_text() == SAMPLE.read_text(), (
        "etc/snapmanager/snapmanager.conf.sample is stale: regenerate it "
        "with `oslo-config-generator --namespace snapmanager "
        "--output-file etc/snapmanager/snapmanager.conf.sample`"
    )


def test_every_option_has_help():
    missing = [
        f"[{getattr(group, 'name', group)}] {opt.name}"
        for group, group_opts in opts.list_opts()
        for opt in group_opts
        if not (opt.help or "").strip()
    ]
    assert missing == []


def test_every_listed_option_is_registered():
    conf = sm_conf.CONF
    for group, group_opts in opts.list_opts():
        name = getattr(group, "name", group)
        for opt in group_opts:
            section = conf if name == "DEFAULT" else conf[name]
            # Reading raises NoSuchOptError for an unregistered option.
            section[opt.dest]


def test_auth_plugin_options_stay_in_their_own_config(tmp_path):
    # keystoneauth registers the chosen plugin's options (auth_url is
    # required) when it loads it: they must not leak into another
    # ConfigOpts, the process's global CONF above all.
    from keystoneauth1 import loading as ks_loading
    from oslo_config import cfg

    from snapmanager_nova.conf import nova as nova_conf

    path = tmp_path / "nova.conf"
    path.write_text(
        "[nova]\nauth_type = password\nauth_url = http://keystone\n"
    )
    loaded = cfg.ConfigOpts()
    nova_conf.register_opts(loaded)
    loaded(["--config-file", str(path)], project="snapmanager")
    ks_loading.load_auth_from_conf_options(loaded, "nova")
    assert "auth_url" in loaded.nova

    other = cfg.ConfigOpts()
    nova_conf.register_opts(other)
    other([], project="snapmanager", default_config_files=[])
    assert "auth_url" not in other.nova
