from django import apps


class SnapmanagerDashboardConfig(apps.AppConfig):
    name = "snapmanager_dashboard"
    verbose_name = "Snapmanager"

    def ready(self):
        # Imported here: Horizon's tables need the settings and the app
        # registry, which are complete only now.
        from .dashboards.project.instance_snapshots import extend

        extend.add_instance_action()
