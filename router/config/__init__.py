"""Configuration: the settings file, its environment overrides and secrets, and logging set-up.

``base`` holds what every settings section shares (the strict model, the duration type);
``settings`` the core sections and the loader, which also validates the sections that plug-ins
register (``router.plugins.settings_section``); ``subscriptions`` the Subscriptions API's section;
``logs`` the process-wide log format.
"""
