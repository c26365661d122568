"""REST routes of the notifications app, under /api/."""

urlpatterns: list = []
