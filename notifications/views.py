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


def notifications_context(user) -> dict:
    """The panel's rows and the count; ``notifications_after`` is where the page's socket
    resumes, so nothing that happens between rendering and connecting is missed."""
    latest = list(selectors.notification_list(user_id=user.pk)[:PANEL_SIZE])
    return {
        "notifications": latest,
        "unread_count": selectors.notification_unread_count(user_id=user.pk),
        "notifications_after": latest[0].seq if latest else 0,
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
