"""REST plumbing shared by every API view: one error body, pagination.

Errors have the same stable codes as on the WebSocket, in one body for every failure:
``{"code", "message", "errors"?}``, with the HTTP status that fits the code.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from procurement_system.errors import DomainError
from procurement_system.serializers import whole_number

logger = logging.getLogger(__name__)

HTTP_STATUS = {
    "bad_request": status.HTTP_400_BAD_REQUEST,
    "validation_error": status.HTTP_400_BAD_REQUEST,
    "not_authenticated": status.HTTP_401_UNAUTHORIZED,
    "forbidden": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "method_not_allowed": status.HTTP_405_METHOD_NOT_ALLOWED,
    "not_acceptable": status.HTTP_406_NOT_ACCEPTABLE,
    "invalid_transition": status.HTTP_409_CONFLICT,
    "unsupported_media_type": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "throttled": status.HTTP_429_TOO_MANY_REQUESTS,
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
    "internal_error": status.HTTP_500_INTERNAL_SERVER_ERROR,
}

# DRF's own exceptions, named with our codes.
DRF_CODES = [
    (exceptions.ValidationError, "validation_error"),
    (exceptions.ParseError, "bad_request"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "not_authenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]


def error_response(code: str, message: str, errors=None, headers=None, **extra) -> Response:
    body = {"code": code, "message": message, **extra}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=HTTP_STATUS[code], headers=headers)


def exception_handler(exc, context) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: domain errors and DRF's errors in the platform's body."""
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.message, exc.errors)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("No such object.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:  # not an API error: a bug or a failed dependency
        logger.error("unexpected error in %s", context["view"].__class__.__name__, exc_info=exc)
        return error_response(
            "internal_error", "Something went wrong on the server; it has been logged."
        )
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), "bad_request")
    headers = {k: v for k, v in response.items() if k in ("Retry-After", "WWW-Authenticate")}
    if isinstance(exc, exceptions.ValidationError):
        errors = response.data
        if isinstance(errors, list):  # a serializer-level error, not tied to a field
            errors = {"non_field_errors": errors}
        return error_response(code, "Some fields are invalid.", errors, headers=headers)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        wait = int(exc.wait + 0.999)
        return error_response(
            code, f"Too many requests; retry in {wait} s.", headers=headers, retry_after=wait
        )
    return error_response(code, str(exc.detail), headers=headers)


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, except that a filter given with no value is an error: ``?created_before=``
    would otherwise quietly filter nothing."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            empty = sorted(
                name
                for name in filterset_class.base_filters
                if "" in request.query_params.getlist(name)
            )
            if empty:
                raise exceptions.ValidationError({name: ["May not be empty."] for name in empty})
        return super().filter_queryset(request, queryset, view)


class PagePagination(PageNumberPagination):
    """``?page=N`` and ``?page_size=M`` (1 to 100); a page size that is not one is an error."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request) -> int:
        given = request.query_params.getlist(self.page_size_query_param)
        if not given:
            return self.page_size
        size = whole_number(given[0]) if len(given) == 1 else None
        if size is None or not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"An integer from 1 to {self.max_page_size}."]}
            )
        return size

    def paginate_queryset(self, queryset, request, view=None):
        given = request.query_params.getlist(self.page_query_param)
        if given and not (
            len(given) == 1 and (given[0] == "last" or (whole_number(given[0]) or 0) >= 1)
        ):
            raise exceptions.ValidationError(
                {self.page_query_param: ["A page number from 1, or last."]}
            )
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
        return parameters


def api_not_found(request, exception=None):
    """Django's 404 handler: the JSON error body under /api/, the usual page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "message": "No such object."}, status=404)
    return page_not_found(request, exception)


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    code = serializers.ChoiceField(choices=sorted(HTTP_STATUS), help_text="Stable error code.")
    message = serializers.CharField(help_text="A text for people.")
    errors = serializers.DictField(
        required=False, help_text="For validation_error: each field's messages."
    )
    retry_after = serializers.IntegerField(
        required=False, help_text="For throttled: seconds to wait (also in Retry-After)."
    )


# Real bodies the API answers, for the schema's examples.
_ERROR_EXAMPLES: dict[str, dict] = {
    "bad_request": {"message": "JSON parse error - Expecting value: line 1 column 2 (char 1)"},
    "validation_error": {
        "message": "Some fields are invalid.",
        "errors": {"latitude": ["Ensure this value is less than or equal to 90."]},
    },
    "not_authenticated": {"message": "Authentication credentials were not provided."},
    "forbidden": {"message": "Only the customer can cancel a pickup."},
    "not_found": {"message": "No such object."},
    "invalid_transition": {"message": "Cannot accept a pickup that is pending."},
    "throttled": {"message": "Too many requests; retry in 12 s.", "retry_after": 12},
}


def error_responses(*codes: str) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the error codes an endpoint can answer, grouped by HTTP status.

    Every authenticated endpoint can also answer not_authenticated and throttled; they are added
    by the caller listing them, so the schema says exactly what each endpoint does.
    """
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    return {
        http_status: OpenApiResponse(
            ErrorSerializer,
            description=" or ".join(grouped),
            examples=[
                OpenApiExample(
                    code,
                    value={"code": code, **_ERROR_EXAMPLES[code]},
                    response_only=True,
                    status_codes=[http_status],
                )
                for code in grouped
            ],
        )
        for http_status, grouped in by_status.items()
    }


#: The errors any authenticated endpoint can answer.
AUTHENTICATED = ("not_authenticated", "throttled")
