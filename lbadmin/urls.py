from django.urls import path

from lbadmin.views import (
    auth,
    certificates,
    config,
    ha,
    ha_api,
    health,
    l4,
    l7,
    network,
    overview,
    pages,
    terminations,
    wizard,
    wizard_checks,
)

app_name = "lbadmin"

urlpatterns = [
    path("", overview.page, name="overview"),
    path("overview/table/", overview.table, name="overview_table"),
    path("overview/servers/<int:pk>/state/", overview.server_state, name="server_state"),
    path("overview/wizard/dismiss/", overview.dismiss_wizard, name="dismiss_wizard"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    # Cluster Configuration > Layer 7
    path("cluster/l7/services/", l7.service_list, name="l7_services"),
    path("cluster/l7/services/add/", l7.service_add, name="l7_service_add"),
    path("cluster/l7/services/<int:pk>/modify/", l7.service_modify, name="l7_service_modify"),
    path("cluster/l7/services/<int:pk>/delete/", l7.service_delete, name="l7_service_delete"),
    path("cluster/l7/servers/", l7.server_list, name="l7_servers"),
    path("cluster/l7/services/<int:service_pk>/servers/add/", l7.server_add, name="l7_server_add"),
    path("cluster/l7/servers/<int:pk>/modify/", l7.server_modify, name="l7_server_modify"),
    path("cluster/l7/servers/<int:pk>/delete/", l7.server_delete, name="l7_server_delete"),
    path("cluster/l7/advanced/", l7.advanced, name="l7_advanced"),
    # Cluster Configuration > Layer 4
    path("cluster/l4/services/", l4.service_list, name="l4_services"),
    path("cluster/l4/services/add/", l4.service_add, name="l4_service_add"),
    path("cluster/l4/services/<int:pk>/modify/", l4.service_modify, name="l4_service_modify"),
    path("cluster/l4/services/<int:pk>/delete/", l4.service_delete, name="l4_service_delete"),
    path("cluster/l4/servers/", l4.server_list, name="l4_servers"),
    path("cluster/l4/services/<int:service_pk>/servers/add/", l4.server_add, name="l4_server_add"),
    path("cluster/l4/servers/<int:pk>/modify/", l4.server_modify, name="l4_server_modify"),
    path("cluster/l4/servers/<int:pk>/delete/", l4.server_delete, name="l4_server_delete"),
    path("overview/l4servers/<int:pk>/state/", overview.l4server_state, name="l4server_state"),
    # Cluster Configuration > SSL Certificate
    path("cluster/certificates/", certificates.certificate_list, name="certificates"),
    path("cluster/certificates/add/", certificates.certificate_add, name="certificate_add"),
    path(
        "cluster/certificates/<int:pk>/csr/", certificates.certificate_csr, name="certificate_csr"
    ),
    path(
        "cluster/certificates/<int:pk>/delete/",
        certificates.certificate_delete,
        name="certificate_delete",
    ),
    # Cluster Configuration > SSL Termination
    path("cluster/ssl/", terminations.termination_list, name="terminations"),
    path("cluster/ssl/add/", terminations.termination_add, name="termination_add"),
    path(
        "cluster/ssl/<int:pk>/modify/",
        terminations.termination_modify,
        name="termination_modify",
    ),
    path(
        "cluster/ssl/<int:pk>/delete/",
        terminations.termination_delete,
        name="termination_delete",
    ),
    # Cluster Configuration > High-Availability Configuration, and the API between the nodes
    path("cluster/ha/", ha.page, name="ha"),
    path("cluster/ha/<slug:name>/", ha.action, name="ha_action"),
    path("api/ha/pair/", ha_api.pair, name="ha_api_pair"),
    path("api/ha/sync/", ha_api.sync, name="ha_api_sync"),
    path("api/ha/status/", ha_api.status, name="ha_api_status"),
    path("api/ha/unpair/", ha_api.unpair, name="ha_api_unpair"),
    path("api/ha/restart-heartbeat/", ha_api.restart_heartbeat, name="ha_api_restart_heartbeat"),
    path("api/ha/hand-over/", ha_api.hand_over, name="ha_api_hand_over"),
    # Applying, View Configuration
    path("apply/", config.apply, name="apply"),
    path("apply/<int:pk>/", config.apply_status, name="apply_status"),
    path("view/haproxy/", config.view_haproxy, name="view_haproxy"),
    path("view/stunnel/", config.view_stunnel, name="view_stunnel"),
    path("view/keepalived/", config.view_keepalived, name="view_keepalived"),
    path("view/pending/", config.view_pending, name="view_pending"),
    path("view/revisions/", config.revisions, name="view_revisions"),
    path("view/revisions/<int:pk>/", config.revision_detail, name="view_revision"),
    path("view/revisions/<int:pk>/rollback/", config.revision_rollback, name="revision_rollback"),
    path("wizard/lync/", wizard.lync, name="wizard_lync"),
    path("wizard/lync/start/", wizard.lync_start, name="wizard_lync_start"),
    path("wizard/lync/step/<int:step>/", wizard.lync_step, name="wizard_lync_step"),
    path("wizard/lync/preflight/", wizard.lync_preflight, name="wizard_lync_preflight"),
    path("wizard/lync/remove/", wizard.lync_remove, name="wizard_lync_remove"),
    path("wizard/lync/progress/<int:pk>/", wizard.lync_progress, name="wizard_lync_progress"),
    path("wizard/lync/checks/", wizard_checks.checks, name="wizard_lync_checks"),
    # Local Configuration
    path("local/network/", network.interfaces, name="network_interfaces"),
    path(
        "local/network/addresses/<int:pk>/delete/",
        network.address_delete,
        name="network_address_delete",
    ),
    path("local/routing/", network.routing, name="network_routing"),
    path("local/routing/<int:pk>/delete/", network.route_delete, name="network_route_delete"),
    path("local/network/confirm/", network.confirm, name="network_confirm"),
    path("local/hostname/", network.identity, name="network_identity"),
    # Maintenance
    path("maintenance/services/", config.restart_services, name="restart_services"),
    path(
        "maintenance/services/haproxy/restart/",
        config.restart_daemon,
        {"name": "haproxy"},
        name="restart_haproxy",
    ),
    path(
        "maintenance/services/stunnel/restart/",
        config.restart_daemon,
        {"name": "stunnel"},
        name="restart_stunnel",
    ),
    path("maintenance/passwords/", auth.passwords, name="passwords"),
    # Reports, Logs
    path("reports/services/", pages.service_status, name="service_status"),
    path("logs/audit/", pages.audit_log, name="audit_log"),
    path("health/", health.health, name="health"),
]
