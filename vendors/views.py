"""The vendor portal: a member's live board of offers and jobs, settings, notifications, history.

The page is rendered whole once; each panel is also a URL of its own that the page fetches again
(HTMX) when a notification arrives on the member's socket, so the board changes live whatever
made the change: another member, the API, a timeout. Buttons post to the views below, which call
the same services as the API and the sockets.
"""

from decimal import Decimal, InvalidOperation

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from notifications.views import live_position, notifications_context
from pickups import selectors as pickup_selectors
from pickups import services as pickup_services
from pickups.transitions import Status
from procurement_system.errors import NotFound, ValidationError
from procurement_system.pages import flash, run_action
from vendors.forms import RejectForm, VendorSettingsForm
from vendors.models import Vendor
from vendors.selectors import vendor_of_member
from vendors.services import vendor_update_settings

JOB_STATUSES = (Status.ACCEPTED, Status.EN_ROUTE, Status.PICKED_UP)
# Each panel's template and what it shows (the status panel shows the vendor itself).
PANELS = {
    "offers": (
        "vendors/portal/offers.html",
        lambda vendor: {
            "offers": pickup_selectors.pickups_of_vendor(
                vendor_id=vendor.pk, statuses=[Status.OFFERED]
            )
        },
    ),
    "jobs": (
        "vendors/portal/jobs.html",
        lambda vendor: {
            "jobs": pickup_selectors.pickups_of_vendor(vendor_id=vendor.pk, statuses=JOB_STATUSES)
        },
    ),
    "history": (
        "vendors/portal/history.html",
        lambda vendor: {"history": pickup_selectors.vendor_history(vendor_id=vendor.pk)},
    ),
    "status": ("vendors/portal/status.html", lambda vendor: {}),
}


def _vendor(request: HttpRequest, vendor_id: int | None = None) -> Vendor:
    try:
        return vendor_of_member(user=request.user, vendor_id=vendor_id)
    except NotFound as error:
        raise Http404(error.message) from None


@require_GET
@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    """The member's first vendor (by name)."""
    return redirect("portal", vendor_id=_vendor(request).pk)


@require_GET
@login_required
def portal(request: HttpRequest, vendor_id: int) -> HttpResponse:
    position = live_position(request.user)  # first: see live_position
    vendor = _vendor(request, vendor_id)
    context = {
        **position,
        "vendor": vendor,
        "vendors": request.user.vendors.order_by("name", "id"),
        **notifications_context(request.user),
        "settings_form": VendorSettingsForm(vendor=vendor),
    }
    for _, panel_context in PANELS.values():
        context.update(panel_context(vendor))
    return render(request, "vendors/portal/page.html", context)


@require_GET
@login_required
def portal_panel(request: HttpRequest, vendor_id: int, panel: str) -> HttpResponse:
    """One panel of the board, fetched again by the page when something changed."""
    if panel not in PANELS:
        raise Http404("No such panel.")
    vendor = _vendor(request, vendor_id)
    template, panel_context = PANELS[panel]
    return render(request, template, {"vendor": vendor, **panel_context(vendor)})


@require_POST
@login_required
def vendor_online(request: HttpRequest, vendor_id: int) -> HttpResponse:
    online = request.POST.get("is_online") == "true"
    return run_action(
        request,
        lambda: vendor_update_settings(vendor_id=vendor_id, by=request.user, is_online=online),
        done="You are online: new offers will reach you."
        if online
        else "You are offline: no new offers until you come back.",
        back=reverse("portal", args=[vendor_id]),
    )


@require_POST
@login_required
def vendor_settings(request: HttpRequest, vendor_id: int) -> HttpResponse:
    vendor = _vendor(request, vendor_id)
    form = VendorSettingsForm(request.POST, vendor=vendor)
    back = reverse("portal", args=[vendor_id])
    if not form.is_valid():
        if not request.htmx:
            return flash(request, "Check the settings form.", level="error", back=back)
        return render(
            request, "vendors/portal/settings.html", {"vendor": vendor, "settings_form": form}
        )
    return run_action(
        request,
        lambda: vendor_update_settings(vendor_id=vendor.pk, by=request.user, **form.changes()),
        done="Settings saved.",
        back=back,
    )


@require_POST
@login_required
def offer_accept(request: HttpRequest, pickup_id: int) -> HttpResponse:
    return run_action(
        request,
        lambda: pickup_services.pickup_accept(pickup_id=pickup_id, by=request.user),
        done=f"You accepted pickup #{pickup_id}.",
        back=reverse("portal-home"),
    )


@require_POST
@login_required
def offer_reject(request: HttpRequest, pickup_id: int) -> HttpResponse:
    form = RejectForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return run_action(
        request,
        lambda: pickup_services.pickup_reject(pickup_id=pickup_id, by=request.user, reason=reason),
        done=f"You declined pickup #{pickup_id}.",
        back=reverse("portal-home"),
    )


STEP_DONE = {
    Status.EN_ROUTE: "You are on the way to pickup #{id}.",
    Status.PICKED_UP: "Pickup #{id} collected.",
    Status.COMPLETED: "Pickup #{id} completed; the receipt follows.",
}


@require_POST
@login_required
def job_advance(request: HttpRequest, pickup_id: int) -> HttpResponse:
    """The job's next step; picking up carries each item's weighed kilograms (``kg_<code>``)."""
    status = request.POST.get("status", "")

    def advance() -> None:
        weights = _weights(request.POST) if status == Status.PICKED_UP else None
        pickup_services.pickup_advance(
            pickup_id=pickup_id, by=request.user, status=status, actual_weights=weights
        )

    return run_action(
        request,
        advance,
        done=STEP_DONE.get(status, "Done.").format(id=pickup_id),
        back=reverse("portal-home"),
    )


def _weights(data) -> dict[str, Decimal]:
    weights, errors = {}, {}
    for key, value in data.items():
        if not key.startswith("kg_"):
            continue
        code = key.removeprefix("kg_")
        try:
            kg = Decimal(value)
        except InvalidOperation:
            kg = None
        if kg is None or not kg.is_finite() or kg < 0 or kg >= Decimal("10000000"):
            errors[code] = ["Enter the weighed kilograms (0 if there was none)."]
        else:
            weights[code] = kg.quantize(Decimal("0.01"))
    if errors:
        raise ValidationError(errors=errors)
    return weights
