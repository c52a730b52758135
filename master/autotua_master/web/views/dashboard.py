from django.shortcuts import render

from ..queries.dashboard import dashboard


def dashboard_view(request):
    return render(request, "web/dashboard.html", dashboard())
