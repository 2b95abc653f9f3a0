"""The admin API (``/api/*``): records, pipeline state, reloads. Every route needs the admin
key, or a loopback caller when no key is configured."""
