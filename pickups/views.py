"""Pages for people in a browser (session sign-in): the customer's pickups and the receipt.

Like the vendor portal, each page is rendered whole once and its live parts are URLs of their
own that the page fetches again (HTMX) when a notification arrives on the user's socket.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications.views import live_position, notifications_context
from pickups import receipts, selectors, services
from pickups.forms import PickupForm
from pickups.serializers import PickupCreateSerializer
from pickups.transitions import TRANSITIONS, Event, Status
from procurement_system.errors import DomainError, NotFound
from procurement_system.pages import run_action

CANCELLABLE = frozenset(status for (status, event) in TRANSITIONS if event == Event.CANCEL)
LIST_SIZE = 50


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Where signing in leads: vendor members to the portal, operators to the admin, everyone
    else to their pickups."""
    if not request.user.is_authenticated:
        return redirect("login")
    if request.user.vendors.exists():
        return redirect("portal-home")
    if request.user.is_staff:
        return redirect("admin:index")
    return redirect("customer-pickups")


def _pickup(request: HttpRequest, pickup_id: int):
    """The user's own pickup; anyone else's is not found."""
    try:
        pickup = selectors.pickup_get(user=request.user, pickup_id=pickup_id)
    except NotFound as error:
        raise Http404(error.message) from None
    if pickup.customer_id != request.user.pk:
        raise Http404(f"Pickup {pickup_id} not found.")
    return pickup


def _list_context(user) -> dict:
    mine = selectors.pickups_visible_to(user=user).filter(customer=user)
    return {"pickups": list(mine.order_by("-created_at", "-id")[:LIST_SIZE])}


@require_http_methods(["GET", "POST"])
@login_required
def customer_pickups(request: HttpRequest) -> HttpResponse:
    """The customer's pickups, newest first, and the form for a new one."""
    form = PickupForm(request.POST or None)
    if request.method == "POST":
        pickup = _create(request, form)
        if pickup is not None:
            return redirect("customer-pickup", pickup_id=pickup.pk)
    position = live_position(request.user)  # first: see live_position
    context = {
        **position,
        **_list_context(request.user),
        **notifications_context(request.user),
        "form": form,
    }
    return render(request, "pickups/customer/list.html", context)


def _create(request: HttpRequest, form: PickupForm):
    if not form.is_valid():
        return None
    serializer = PickupCreateSerializer(data=form.payload())
    if not serializer.is_valid():
        form.add_api_errors(serializer.errors)
        return None
    try:
        pickup, _ = services.pickup_create(
            customer=request.user,
            idempotency_key=form.cleaned_data["idempotency_key"],
            **serializer.validated_data,
        )
    except DomainError as error:
        form.add_api_errors(error.errors or {None: [error.message]})
        return None
    return pickup


@require_GET
@login_required
def customer_pickups_panel(request: HttpRequest) -> HttpResponse:
    return render(request, "pickups/customer/list_panel.html", _list_context(request.user))


def _detail_context(pickup) -> dict:
    return {
        "pickup": pickup,
        "can_cancel": pickup.status in CANCELLABLE,
        "can_reject": pickup.status == Status.ACCEPTED,
        "tracking": pickup.status == Status.EN_ROUTE,
    }


@require_GET
@login_required
def customer_pickup(request: HttpRequest, pickup_id: int) -> HttpResponse:
    position = live_position(request.user)  # first: see live_position
    pickup = _pickup(request, pickup_id)
    context = {**position, **_detail_context(pickup), **notifications_context(request.user)}
    return render(request, "pickups/customer/detail.html", context)


@require_GET
@login_required
def customer_pickup_panel(request: HttpRequest, pickup_id: int) -> HttpResponse:
    pickup = _pickup(request, pickup_id)
    return render(request, "pickups/customer/detail_panel.html", _detail_context(pickup))


def _customer_action(request: HttpRequest, pickup_id: int, service, done: str) -> HttpResponse:
    """Run ``service`` on the pickup with the reason the customer gave, back on its page."""
    reason = request.POST.get("reason", "")[:500]
    return run_action(
        request,
        lambda: service(pickup_id=pickup_id, by=request.user, reason=reason),
        done=done,
        back=reverse("customer-pickup", args=[pickup_id]),
    )


@require_POST
@login_required
def customer_cancel(request: HttpRequest, pickup_id: int) -> HttpResponse:
    return _customer_action(
        request, pickup_id, services.pickup_cancel, f"Pickup #{pickup_id} was cancelled."
    )


@require_POST
@login_required
def customer_reject_vendor(request: HttpRequest, pickup_id: int) -> HttpResponse:
    return _customer_action(
        request,
        pickup_id,
        services.pickup_reject,
        f"The vendor was released; pickup #{pickup_id} goes to another vendor.",
    )


@require_GET
@login_required
def receipt_page(request: HttpRequest, pickup_id: int) -> HttpResponse:
    """The receipt as a printable page, for the customer and the vendor's members."""
    try:
        receipt = receipts.receipt_get(user=request.user, pickup_id=pickup_id)
    except NotFound as error:
        raise Http404(error.message) from None
    return render(
        request,
        "pickups/receipt.html",
        {"receipt": receipt, "pickup": receipt.pickup, "lines": receipt.lines.all()},
    )
