"""The sandbox: a jupyter_client kernel provisioner (``icpy-sandbox``) and what it enforces."""
