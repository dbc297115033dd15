"""The live dashboard at ``/ui``: one page, its static files, a snapshot and an event socket.

``routes.py`` serves the page, plotly's bundled JavaScript (no CDN: the page opens offline) and
the dashboard's own script and stylesheet; ``snapshot.py`` serialises what the page shows;
``hub.py`` streams journal events and light price ticks over ``/ui/events``. The page's
controls call the control plane (``/control/advance``, ``/control/prices``) like any client.
"""

from perpsim.api.ui.routes import router

__all__ = ["router"]
