"""Cluster deployment: peer configurations, and the deploy/undeploy actions."""
