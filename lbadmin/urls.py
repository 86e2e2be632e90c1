from django.urls import path

from lbadmin.views import auth, health, pages

app_name = "lbadmin"

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("maintenance/passwords/", auth.passwords, name="passwords"),
    path("reports/services/", pages.service_status, name="service_status"),
    path("logs/audit/", pages.audit_log, name="audit_log"),
    path("health/", health.health, name="health"),
]
