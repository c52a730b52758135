"""The web UI's pages (issue 7 fills these in)."""

app_name = "web"
urlpatterns: list = []
