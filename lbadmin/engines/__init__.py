"""Daemon control (HAProxy, stunnel, keepalived): see lbadmin.engines.daemons."""
