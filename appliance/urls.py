"""The WebUI lives under /lbadmin/ as on the appliance; / redirects there."""

from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", login_not_required(RedirectView.as_view(url="/lbadmin/", permanent=False))),
    path("lbadmin/", include("lbadmin.urls")),
]
