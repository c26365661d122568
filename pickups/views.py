"""Pages for people in a browser (session sign-in)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pickups import receipts
from procurement_system.errors import NotFound


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
