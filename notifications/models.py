from django.conf import settings
from django.db import models


class NotificationSequence(models.Model):
    """The last notification number given to a user.

    Numbers are taken under this row's lock, inside the transaction that inserts the
    notification, so one user's notifications commit in number order: a client that has seen
    number N and asks for everything after N can never miss one that commits later.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last_seq = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.last_seq}"


class Notification(models.Model):
    """The truth about what a user was told. The channel layer only wakes sockets up."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    seq = models.PositiveBigIntegerField(help_text="Per-user increasing id, shown as ``id``.")
    kind = models.CharField(max_length=50)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    # Identifies the event this notification reports, so a redelivered task cannot store it twice.
    event_key = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["recipient", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["recipient", "seq"], name="notification_seq_unique"),
            models.UniqueConstraint(
                fields=["recipient", "event_key"], name="notification_event_unique"
            ),
        ]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self) -> str:
        return f"{self.recipient_id}#{self.seq} {self.kind}"
