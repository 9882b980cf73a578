"""okeguard: keeps Oracle Kubernetes Engine clusters on Oracle's OKE security best practices."""

__version__ = "0.1.0"
