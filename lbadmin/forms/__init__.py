"""Forms only validate (through lbadmin.allowlists); the services in lbadmin.services write."""
