"""What the browser pages share: running a service for a form and answering HTMX or a plain post.

A page's buttons and forms post to small views that call the same services as the API and the
sockets. With HTMX (the normal case) the answer is a message swapped into the page's ``#flash``
area, and a ``pickups-changed`` event makes the page's panels fetch themselves again; a browser
without JavaScript gets the same message on the page it is sent back to. A domain error keeps its
stable code (in the message and the ``X-Error-Code`` header) and, as the services guarantee,
changed nothing. The answer to HTMX is a 200 either way: the message is the content, and an
error status would only add a failed request to the browser's console.
"""

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import reswap, retarget, trigger_client_event

from procurement_system.errors import DomainError


def run_action(
    request: HttpRequest, call: Callable[[], object], *, done: str, back: str
) -> HttpResponse:
    """Run ``call`` (a service call) and answer with what happened; ``back`` is the page a
    browser without JavaScript returns to."""
    try:
        call()
    except DomainError as error:
        return flash(request, errors_text(error), level="error", code=error.code, back=back)
    return flash(request, done, level="success", back=back)


def flash(
    request: HttpRequest, text: str, *, level: str, back: str, code: str | None = None
) -> HttpResponse:
    if not request.htmx:
        getattr(messages, level)(request, text)
        return redirect(back)
    response = render(request, "flash.html", {"text": text, "level": level, "code": code})
    response = reswap(retarget(response, "#flash"), "innerHTML")
    if code:
        response["X-Error-Code"] = code
    # Success or not, the panels fetch themselves again: an error often means the page was stale.
    return trigger_client_event(response, "pickups-changed")


def errors_text(error: DomainError) -> str:
    """A validation error's field messages in one line, for a flash message."""
    if not isinstance(error.errors, dict):
        return error.message
    parts = [
        f"{field.replace('_', ' ')}: {' '.join(map(str, problems))}"
        for field, problems in error.errors.items()
    ]
    return f"{error.message} {'; '.join(parts)}"
