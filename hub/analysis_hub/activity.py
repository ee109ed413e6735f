"""Hub-side half of the activity policy: proxy traffic is not activity.

JupyterHub reads each route's `last_activity` from configurable-http-proxy
and counts any traffic, an untouched JupyterLab tab's polling included, as
use of the server. This proxy class drops that field, so a server's activity
comes only from the server's own reports (see
`singleuser/analysis_hub_activity.py`), which count real work. Routing is
unchanged.
"""

from jupyterhub.proxy import ConfigurableHTTPProxy


class ServerReportedActivityProxy(ConfigurableHTTPProxy):
    async def get_all_routes(self):
        routes = await super().get_all_routes()
        for route in routes.values():
            route.get("data", {}).pop("last_activity", None)
        return routes
