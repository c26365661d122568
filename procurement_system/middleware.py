"""The browser pages show and read times in the user's own time zone.

The pages' script stores the browser's IANA zone name in the ``tz`` cookie; this activates it for
the pages (Django's "selecting the current time zone"), so a window typed as 14:00 means 14:00
where the customer is. The API and the sockets keep answering in UTC whatever the cookie says.
"""

import zoneinfo
from functools import lru_cache

from django.utils import timezone

PAGE_EXEMPT = ("/api/", "/admin/")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def browser_timezone(get_response):
    def middleware(request):
        name = request.COOKIES.get("tz", "")
        if name in _zones() and not request.path.startswith(PAGE_EXEMPT):
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        return get_response(request)

    return middleware
