"""``GET /api/tasks/<task_id>/``: a Celery task's state and result, for clients that poll.

States and results come from the result backend (the ``django-cache`` DatabaseCache table); the
view reads them once and never waits. A task is shown to whom it concerns: the assignment task
of a pickup to those who may see that pickup, any task to operators; every other id, and an id
that does not exist, answers ``not_found``.
"""

from uuid import UUID

from celery.result import AsyncResult
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pickups.selectors import pickup_by_assignment_task
from procurement_system.errors import NotFound
from procurement_system.rest import AUTHENTICATED, error_responses


class TaskStatusSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    name = serializers.CharField(allow_null=True, help_text="The task, once a worker took it.")
    state = serializers.ChoiceField(
        choices=["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"],
        help_text="PENDING until a worker starts it (Celery cannot tell a queued task from an "
        "unknown one).",
    )
    result = serializers.JSONField(
        allow_null=True, help_text="When SUCCESS: what the task returned."
    )
    error = serializers.CharField(allow_null=True, help_text="When FAILURE: the error.")
    date_done = serializers.DateTimeField(allow_null=True)


class TaskStatusView(APIView):
    @extend_schema(
        summary="A background task's state and result",
        description="Poll the assignment of a pickup with its ``assignment_task_id``: SUCCESS "
        "with the pickup's status afterwards (``offered`` or ``unassigned``).",
        responses={200: TaskStatusSerializer, **error_responses("not_found", *AUTHENTICATED)},
        examples=[
            OpenApiExample(
                "An assignment that found a vendor",
                response_only=True,
                value={
                    "task_id": "2f1c9a4e-7b1d-4c1e-9a53-0d7b8e6f4a21",
                    "name": "pickups.tasks.assign_vendor_task",
                    "state": "SUCCESS",
                    "result": "offered",
                    "error": None,
                    "date_done": "2030-05-01T08:00:00.120000Z",
                },
            )
        ],
    )
    def get(self, request: Request, task_id: UUID) -> Response:
        task_id = str(task_id)
        if not (
            request.user.is_staff or pickup_by_assignment_task(user=request.user, task_id=task_id)
        ):
            raise NotFound("No such task.")
        result = AsyncResult(task_id)
        state = result.state
        return Response(
            TaskStatusSerializer(
                {
                    "task_id": task_id,
                    "name": result.name,
                    "state": state,
                    "result": result.result if state == "SUCCESS" else None,
                    "error": repr(result.result) if state == "FAILURE" else None,
                    "date_done": result.date_done,
                }
            ).data
        )
