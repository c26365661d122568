"""The notifications panel of the browser pages, with its unread count and "mark all read"."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from notifications import selectors
from notifications.services import notifications_mark_all_read
from procurement_system.pages import run_action

PANEL_SIZE = 15


def live_position(user) -> dict:
    """Where a page's notification socket resumes (``notifications_after``). A page reads it
    before anything it shows: a change that commits while the page is read then has a
    notification after it, which the socket delivers and the page's panels follow. Read after
    the page's data, a change committed in between would be shown half (a status read before
    it, a history read after) and never announced."""
    return {"notifications_after": selectors.notification_last_seq(user_id=user.pk)}


def notifications_context(user) -> dict:
    """The panel's rows and the count."""
    return {
        "notifications": list(selectors.notification_list(user_id=user.pk)[:PANEL_SIZE]),
        "unread_count": selectors.notification_unread_count(user_id=user.pk),
    }


@require_GET
@login_required
def notifications_panel(request: HttpRequest) -> HttpResponse:
    return render(request, "notifications/panel.html", notifications_context(request.user))


@require_POST
@login_required
def notifications_read(request: HttpRequest) -> HttpResponse:
    return run_action(
        request,
        lambda: notifications_mark_all_read(user_id=request.user.pk),
        done="All notifications marked read.",
        back=reverse("home"),
    )
