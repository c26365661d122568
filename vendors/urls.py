"""REST routes of the vendors app, under /api/."""

urlpatterns: list = []
